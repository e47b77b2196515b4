"""Adapters over Optuna's samplers: the algorithm is Optuna's, the seam is ours.

Each call rebuilds an in-memory Optuna study from the experiment's trials — completed
ones with their objective, failed ones as failed, pending and running ones as running (so
TPE's constant liar and the others never propose what is already being tried) — then asks
for the new points. Nothing lives between calls, so a restarted controller proposes
exactly what it would have.

Numeric parameters enter Optuna as their quantile in ``[0, 1]`` (see ``_space``), so
every Katib distribution and step is honoured whatever the sampler; categorical ones as
Optuna categoricals.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from katib.spec import Experiment

from ._base import Algorithm, Assignment, TrialView
from ._space import Dimension, SearchSpace

# Trials the sampler learns from; EarlyStopped ones carry their (partial) objective.
_COMPLETE = ("Succeeded", "EarlyStopped")
_FAILED = ("Failed", "MetricsUnavailable", "Killed")
MAX_RETRIES = 30


def _distributions(space: SearchSpace) -> dict[str, Any]:
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    return {
        d.name: CategoricalDistribution(list(d.choices)) if d.categorical else FloatDistribution(0.0, 1.0)
        for d in space.dims
    }


def _to_optuna(d: Dimension, value: str) -> Any:
    return value if d.categorical else d.to_unit(value)


def _from_optuna(d: Dimension, value: Any) -> str:
    return str(value) if d.categorical else d.from_unit(float(value))


class OptunaAlgorithm(Algorithm):
    """Base of the adapters: subclasses say which sampler, from the parsed settings."""

    def make_sampler(self, settings: dict[str, Any], seed: int | None, n_params: int) -> Any:
        raise NotImplementedError  # pragma: no cover - every subclass defines it

    def suggest(
        self,
        experiment: Experiment,
        trials: Sequence[TrialView],
        count: int,
        state: dict[str, Any] | None = None,
    ) -> list[Assignment]:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.ERROR)
        with warnings.catch_warnings():
            # Optuna flags experimental and deprecated arguments; the adapter chose them.
            warnings.simplefilter("ignore")
            return self._suggest(optuna, experiment, trials, count)

    def _suggest(self, optuna: Any, experiment: Experiment, trials: Sequence[TrialView], count: int) -> list[Assignment]:
        from optuna.trial import TrialState, create_trial

        space = SearchSpace.from_experiment(experiment)
        dists = _distributions(space)
        settings = self.parsed_settings(experiment)
        base = settings.get("random_state")
        # A seed per history length: the same history gives the same proposals.
        seed = None if base is None else (base * 1_000_003 + len(trials)) % 2**31
        maximize = experiment.spec.objective is not None and experiment.spec.objective.type == "maximize"
        study = optuna.create_study(
            direction="maximize" if maximize else "minimize",
            sampler=self.make_sampler(settings, seed, len(space.dims)),
        )
        for t in trials:
            params = {d.name: _to_optuna(d, t.parameters[d.name]) for d in space.dims if d.name in t.parameters}
            if len(params) != len(space.dims):
                continue
            if t.state in _COMPLETE and t.objective is not None and math.isfinite(t.objective):
                study.add_trial(create_trial(params=params, distributions=dists, value=t.objective))
            elif t.state in _FAILED or t.state in _COMPLETE:
                study.add_trial(create_trial(state=TrialState.FAIL, params=params, distributions=dists))
            else:
                study.add_trial(create_trial(state=TrialState.RUNNING, params=params, distributions=dists))

        finite = space.size() < math.inf
        seen = {space.key(t.parameters) for t in trials} if finite else set()
        rng = np.random.default_rng(seed)
        out: list[Assignment] = []
        for _ in range(count):
            if finite and len(seen) >= space.size():
                break  # every point is taken: the space is exhausted
            for _attempt in range(MAX_RETRIES):
                trial = study.ask(dists)
                params = {d.name: _from_optuna(d, trial.params[d.name]) for d in space.dims}
                if space.key(params) not in seen:
                    break
                # A repeat of a known point in a finite space: tell the sampler and retry.
                study.tell(trial, state=TrialState.FAIL)
            else:
                params = self._free_point(space, seen, rng)
            seen.add(space.key(params))
            out.append(Assignment(params))
        return out

    @staticmethod
    def _free_point(space: SearchSpace, seen: set, rng: np.random.Generator) -> dict[str, str]:
        for _ in range(1000):
            params = space.sample(rng)
            if space.key(params) not in seen:
                return params
        import itertools

        for values in itertools.product(*(d.grid() for d in space.dims)):
            params = dict(zip((d.name for d in space.dims), values, strict=True))
            if space.key(params) not in seen:
                return params
        raise AssertionError("no free point left in a space that has one")
