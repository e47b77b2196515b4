"""Sobol quasi-random search."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from katib.spec import Experiment

from ._base import Algorithm, Assignment, Setting, TrialView
from ._space import SearchSpace


class Sobol(Algorithm):
    """The Sobol low-discrepancy sequence, mapped through each parameter's distribution.

    The n-th trial gets the (n+1)-th point of the (unscrambled) sequence, so points fill the
    space evenly and the same experiment always gets the same points, across restarts
    too. No settings, as in Katib (whose stock sobol, goptuna's, ignores any it is given).
    In a finite space a point already taken is skipped.
    """

    name = "sobol"
    ignores_unknown_settings = True
    multi_objective = True
    settings: ClassVar[dict[str, Setting]] = {}

    def suggest(
        self,
        experiment: Experiment,
        trials: Sequence[TrialView],
        count: int,
        state: dict[str, Any] | None = None,
    ) -> list[Assignment]:
        from scipy.stats import qmc

        space = SearchSpace.from_experiment(experiment)
        finite = space.size() < math.inf
        seen = {space.key(t.parameters) for t in trials}
        engine = qmc.Sobol(d=len(space.dims), scramble=False)
        engine.fast_forward(len(trials) + 1)  # point 0 is the all-minimum corner: skip it
        out: list[Assignment] = []
        draws = 0
        while len(out) < count and not (finite and len(seen) >= space.size()):
            u = engine.random(1)[0] if draws < 100_000 else np.random.default_rng(draws).random(len(space.dims))
            draws += 1
            params = {d.name: d.from_unit(float(x)) for d, x in zip(space.dims, u, strict=True)}
            key = space.key(params)
            if finite and key in seen:
                continue
            seen.add(key)
            out.append(Assignment(params))
        return out
