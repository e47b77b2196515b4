"""Random search."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from katib.spec import Experiment

from ._base import Algorithm, Assignment, Setting, TrialView, seed
from ._space import SearchSpace


class RandomSearch(Algorithm):
    """Independent draws from each parameter's distribution.

    Settings: ``random_state`` (an integer seed; the n-th batch of a seeded experiment is
    the same on every run, and after a restart). In a finite space (lists, ints, stepped
    doubles) no point is proposed twice; once every point is taken, the space is exhausted.

    >>> from suggestion import get_algorithm
    >>> get_algorithm("random").name
    'random'
    """

    name = "random"
    multi_objective = True
    settings = {"random_state": Setting(seed)}

    def suggest(
        self,
        experiment: Experiment,
        trials: Sequence[TrialView],
        count: int,
        state: dict[str, Any] | None = None,
    ) -> list[Assignment]:
        seed = self.parsed_settings(experiment)["random_state"]
        import numpy as np

        rng = np.random.default_rng(None if seed is None else [seed, len(trials)])
        space = SearchSpace.from_experiment(experiment)
        if space.infinite:  # a continuous dimension: a repeat has probability zero
            return [Assignment(space.sample(rng)) for _ in range(count)]
        seen = {space.key(t.parameters) for t in trials}
        free = space.size() - len(seen)
        out: list[Assignment] = []
        while len(out) < count and free > 0:
            for _ in range(1000):
                params = space.sample(rng)
                key = space.key(params)
                if key not in seen:
                    break
            else:  # a nearly full finite space: take the first free point
                if space.size() <= 1e6:
                    params = space.first_free(seen)
                    key = space.key(params)
            seen.add(key)
            free -= 1
            out.append(Assignment(params))
        return out
