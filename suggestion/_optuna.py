"""Adapters over Optuna's samplers: the algorithm is Optuna's, the seam is ours.

An in-memory Optuna study mirrors the experiment's trials — completed ones with their
objective, failed ones as failed, pending and running ones as running (so TPE's constant
liar and the others never propose what is already being tried) — and the sampler, seeded
per history length, asks for the new points. The study is only a cache: it is built
from the trials the controller passes and kept in step with them, so a restarted
controller rebuilds the same knowledge from the store.

Numeric parameters enter Optuna as their quantile in ``[0, 1]`` (see ``_space``), so
every Katib distribution and step is honoured whatever the sampler; categorical ones as
Optuna categoricals.
"""

from __future__ import annotations

import json
import math
import warnings
from abc import abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np

from katib.spec import Experiment, new_trial_name

from ._base import Algorithm, Assignment, TrialView
from ._space import Dimension, SearchSpace

# Trials the sampler learns from; EarlyStopped ones carry their (partial) objective.
_COMPLETE = ("Succeeded", "EarlyStopped")
_FAILED = ("Failed", "MetricsUnavailable", "Killed")
# A finite space never gets a point twice. A sampler that proposes a known point is asked
# again, up to this many times, then the known point's nearest free neighbour is taken
# (``SearchSpace.nearest_free``). 30 asks cost 10x the CPU of 3 on HPOBench's tables for
# the same answers within noise (docs/benchmarks.md, "Repeats in a finite space").
MAX_RETRIES = 3


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

    def __init__(self) -> None:
        self._cache: tuple[str, Any, dict[str, tuple[int, Any]]] | None = None
        self._sampler: tuple[tuple[int, str], Any] | None = None

    def reseed(self, sampler: Any, seed: int | None) -> bool:
        """Seed a reused sampler as ``make_sampler`` would seed a new one, and say so. An
        adapter that can returns True: one sampler then serves every call on the same study
        (its caches, such as the TPE's search-space intersection, grow with the history
        instead of being rebuilt over all of it). By default a new sampler serves each call."""
        return False

    @abstractmethod
    def make_sampler(self, settings: dict[str, Any], seed: int | None, n_params: int) -> Any:
        """The Optuna sampler for these settings, seeded with ``seed``."""

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

    def _study(self, optuna: Any, experiment: Experiment, space: SearchSpace, dists: dict[str, Any],
               trials: Sequence[TrialView]) -> Any:
        """The in-memory study holding ``trials``: built once, then kept in step with the
        trials the controller passes (new ones added, finished ones told), so a call costs
        what the sampler costs, not a rebuild of the whole history."""
        from optuna.trial import TrialState, create_trial

        key = json.dumps([experiment.namespace, experiment.name,
                          experiment.spec.model_dump(mode="json", include={"parameters", "objective", "algorithm"})],
                         sort_keys=True)
        if self._cache is None or self._cache[0] != key:
            obj = experiment.spec.objective
            assert obj is not None
            directions = [obj.type or "minimize", *[a.type or "minimize" for a in obj.additional_objectives or []]]
            study = optuna.create_study(directions=directions)
            self._cache = (key, study, {})
        _, study, known = self._cache
        n_objectives = len(study.directions)
        storage, study_id = study._storage, study._study_id
        for t in trials:
            seen = known.get(t.name)
            if seen is not None and seen[1] != TrialState.RUNNING:
                continue  # told already: a finished trial does not change
            values = list(t.values) if t.values is not None else ([t.objective] if t.objective is not None else None)
            if (t.state in _COMPLETE and values is not None and len(values) == n_objectives
                    and all(math.isfinite(v) for v in values)):
                kind = TrialState.COMPLETE
            elif t.state in _FAILED or t.state in _COMPLETE:
                kind, values = TrialState.FAIL, None
            else:
                kind, values = TrialState.RUNNING, None
            if seen is not None:
                trial_id, state = seen
                if state != kind and state == TrialState.RUNNING:
                    if t.violations:
                        storage.set_trial_system_attr(trial_id, "constraints", [min(v, 1e300) for v in t.violations])
                    storage.set_trial_state_values(trial_id, kind, values)
                    known[t.name] = (trial_id, kind)
                continue
            params = {d.name: _to_optuna(d, t.parameters[d.name]) for d in space.dims if d.name in t.parameters}
            if len(params) != len(space.dims):
                continue
            frozen = create_trial(
                state=kind, params=params, distributions=dists, values=values,
                constraints={f"c{i}": min(v, 1e300) for i, v in enumerate(t.violations)} if t.violations else None,
            )
            known[t.name] = (storage.create_new_trial(study_id, template_trial=frozen), kind)
        return study

    def _suggest(self, optuna: Any, experiment: Experiment, trials: Sequence[TrialView], count: int) -> list[Assignment]:
        from optuna.trial import TrialState

        space = SearchSpace.from_experiment(experiment)
        dists = _distributions(space)
        settings = self.parsed_settings(experiment)
        base = settings.get("random_state")
        # A seed per history length: the same history gives the same proposals.
        seed = None if base is None else (base * 1_000_003 + len(trials)) % 2**31
        study = self._study(optuna, experiment, space, dists, trials)
        key = (id(study), json.dumps(settings, sort_keys=True, default=str))
        if self._sampler is not None and self._sampler[0] == key and self.reseed(self._sampler[1], seed):
            study.sampler = self._sampler[1]
        else:
            study.sampler = self.make_sampler(settings, seed, len(space.dims))
            self._sampler = (key, study.sampler)

        finite = space.size() < math.inf
        seen = {space.key(t.parameters) for t in trials} if finite else set()
        rng = np.random.default_rng(seed)
        known = self._cache[2] if self._cache is not None else {}
        out: list[Assignment] = []
        for _ in range(count):
            if finite and len(seen) >= space.size():
                break  # every point is taken: the space is exhausted
            kept = None
            for _attempt in range(MAX_RETRIES):
                trial = study.ask(dists)
                params = {d.name: _from_optuna(d, trial.params[d.name]) for d in space.dims}
                if space.key(params) not in seen:
                    kept = trial
                    break
                # A known point of a finite space: failed trials are ignored by every sampler.
                study.tell(trial, state=TrialState.FAIL)
            else:  # the sampler keeps coming back to known points: take the nearest free one
                params = space.nearest_free(params, seen, rng) or space.free_point(seen, rng)
            seen.add(space.key(params))
            # The trial is named here, so when it comes back from the controller it is
            # matched to the very Optuna trial that was asked (CMA-ES keeps its
            # generation in it) and completed in place.
            name = new_trial_name(experiment.name)
            if kept is not None:
                known[name] = (kept._trial_id, TrialState.RUNNING)
            out.append(Assignment(params, name=name))
        return out

