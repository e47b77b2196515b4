"""Grid search."""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from katib.errors import FieldError
from katib.spec import Experiment

from ._base import Algorithm, Assignment, Setting, TrialView, seed
from ._space import SearchSpace

MAX_SHUFFLED_GRID = 1_000_000


def katib_grid_size(experiment: Experiment) -> int:
    """The grid's size as Katib's optuna service counts it (``convert_to_combinations``):
    ints ``range(min, max + 1, step)``, doubles ``np.arange(min, max + step, step)`` without
    a last value past ``max``, lists their length. Counted, never listed: an admitted grid
    may have 10¹⁰⁰ points (``np.arange`` itself is used up to ``EXACT_ARANGE`` points)."""
    size = 1
    for p in experiment.spec.parameters or []:
        fs = p.feasible_space
        if fs is None:
            continue
        if p.parameter_type == "int":
            lo, hi, step = int(fs.min or 0), int(fs.max or 0), int(fs.step or 1)
            size *= max(0, (hi - lo) // step + 1) if step > 0 else 0
        elif p.parameter_type == "double":
            size *= _arange_size(float(fs.min or 0), float(fs.max or 0), float(fs.step or 1))
        else:
            size *= len(fs.list_ or [])
    return size


EXACT_ARANGE = 1_000_000


def _arange_size(lo: float, hi: float, step: float) -> int:
    """``len`` of ``np.arange(lo, hi + step, step)`` less a last value past ``hi``."""
    span = (hi + step - lo) / step if step > 0 else math.nan
    if not math.isfinite(span):
        return 0 if math.isnan(span) else sys.maxsize
    n = max(0, math.ceil(span))
    if n <= EXACT_ARANGE:
        values = np.arange(lo, hi + step, step)
        return len(values) - int(len(values) > 0 and values[-1] > hi)
    delta = (lo + step) - lo  # numpy's: it fills start + i * ((start + step) - start)
    return n - int(lo + (n - 1) * delta > hi)


class GridSearch(Algorithm):
    """Every combination of the parameters' grid values, each exactly once.

    Doubles need a ``step`` (values ``min, min+step, … <= max``), ints step by their
    ``step`` or 1, lists give their values. Points come in lexicographic order, or in a
    seeded random order with ``random_state``. When every point has been proposed the
    space is exhausted and the experiment ends with ``ExperimentSuggestionEndReached``.
    As in Katib, ``maxTrialCount`` may not exceed the number of points.
    """

    name = "grid"
    multi_objective = True
    settings = {"random_state": Setting(seed)}

    def validate(self, experiment: Experiment) -> list[FieldError]:
        errors = super().validate(experiment)
        for i, p in enumerate(experiment.spec.parameters or []):
            fs = p.feasible_space
            if p.parameter_type == "double" and fs is not None and fs.step is None:
                errors.append(FieldError(
                    f"spec.parameters[{i}].feasibleSpace.step",
                    "is required for double parameters with the grid algorithm",
                ))
        max_trials = experiment.spec.max_trial_count
        if not errors and max_trials is not None and max_trials > (points := katib_grid_size(experiment)):
            errors.append(FieldError("spec.maxTrialCount", f"must be at most the {points} points of the grid (got {max_trials})"))
        return errors

    def _points(self, space: SearchSpace, seed: int | None) -> Iterator[dict[str, str]]:
        if seed is None or space.size() > MAX_SHUFFLED_GRID:
            return space.points()
        return space.points(np.random.default_rng(seed).permutation(int(space.size())))

    def suggest(
        self,
        experiment: Experiment,
        trials: Sequence[TrialView],
        count: int,
        state: dict[str, Any] | None = None,
    ) -> list[Assignment]:
        space = SearchSpace.from_experiment(experiment)
        seen = {space.key(t.parameters) for t in trials}
        out: list[Assignment] = []
        if count <= 0:
            return out
        for params in self._points(space, self.parsed_settings(experiment)["random_state"]):
            if space.key(params) not in seen:
                out.append(Assignment(params))
                if len(out) == count:
                    break
        return out
