"""``auto``: an algorithm that picks one of ours per experiment, and may switch as it runs.

The choice is made again before each proposal from what the experiment is (its search
space, objectives and constraints) and how far it has got (completed trials). OptunaHub's
AutoSampler is the anchor: a TPE where parameters are lists or categorical or there are
several objectives; a Gaussian process for small numeric budgets, then CMA-ES
warm-started from the trials so far. We keep its TPE, and after a few dozen trials hand a
numeric space to a local method started at the TPE's incumbent: a quadratic-model trust
region (``_trust_region``) up to 10 parameters, CMA-ES with a small step above. On BBOB
(docs/benchmarks.md) that is ahead of Optuna's TPE on most functions at d = 5 and 10 (the
trust region) and d = 20 (CMA-ES); our GP was not better than the TPE there, for 30 times
the CPU. So:

- several objectives or constraints: ``tpe`` throughout;
- a list or categorical parameter: ``tpe``, and where the whole space is finite (lists,
  integers, stepped doubles), from ``LOCAL_SEARCH_AFTER`` completed trials a local search:
  an unseen neighbour (one grid step) of the incumbent, the TPE again whenever every
  neighbour has been tried (on NAS-Bench-201 that reaches the table's best by 100 trials;
  on HPOBench it is level with ``tpe`` alone, a little ahead on the mean);
- fewer than two numeric parameters: ``tpe`` throughout;
- where every numeric parameter has at most ``1 / σ`` values (20 integers, say: each
  value's cell is wider than CMA-ES's first step, so its proposals round back to the
  incumbent): ``tpe`` throughout;
- otherwise ``tpe`` until ``switch_point`` trials have completed (35 up to 10 numeric
  parameters, 25 above: the TPE's model thins out with the dimension), then, up to
  ``TRUST_REGION_MAX`` parameters, the trust region around the incumbent (the TPE again
  for a few proposals whenever a basin is spent), above it ``cmaes`` started at the
  incumbent with a step of 0.1 of the unit range.

``choose`` is the rule, kept pure so tests can read each decision.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from katib.spec import Experiment

from ._base import ACTIVE_STATES, Algorithm, Assignment, Setting, TrialView, seed
from ._cmaes import CMAES
from ._space import SearchSpace
from ._tpe import TPE
from ._trust_region import DELTA0

# (up to this many numeric parameters, switch after this many completed trials, CMA-ES's
# step as a fraction of each parameter's unit range): chosen on BBOB at 2, 5, 10 and 20.
SWITCH_POINTS = ((10, 35, 0.05), (None, 25, 0.1))
# Up to this many numeric parameters the local phase is the quadratic trust region
# (``_trust_region``), above it CMA-ES: a full quadratic in d parameters has (d+1)(d+2)/2
# terms, 66 at 10, more than the trials a budget of a few hundred gives it near the incumbent.
TRUST_REGION_MAX = 10
# In a finite space with list or categorical parameters, the local search around the
# incumbent starts after this many completed trials (chosen on HPOBench and NAS-Bench-201).
LOCAL_SEARCH_AFTER = 50
_COMPLETE = ("Succeeded", "EarlyStopped")


def _completed(trials: Sequence[TrialView]) -> list[TrialView]:
    """The trials with a finite objective: a diverged one (NaN, inf) counts for nothing."""
    return [t for t in trials if t.state in _COMPLETE and t.objective is not None
            and math.isfinite(float(t.objective))]


def _best(experiment: Experiment, trials: Sequence[TrialView]) -> TrialView:
    """The completed trial with the best objective."""
    obj = experiment.spec.objective
    sign = -1.0 if obj is not None and obj.type == "maximize" else 1.0
    return min(_completed(trials), key=lambda t: sign * float(t.objective))  # type: ignore[arg-type]


@dataclass(frozen=True)
class Choice:
    algorithm: str  # "tpe", "local-search", "trust-region" or "cmaes"
    reason: str
    sigma: float = 0.0  # CMA-ES's first step, or the trust region's first half-width, of the unit range


def switch_point(n_numeric: int) -> tuple[int, float]:
    """After how many completed trials ``auto`` leaves the TPE for CMA-ES, and its step."""
    for most, at, sigma in SWITCH_POINTS:
        if most is None or n_numeric <= most:
            return at, sigma
    raise AssertionError("SWITCH_POINTS ends with an open row")


def choose(space: SearchSpace, n_objectives: int, constrained: bool, completed: int) -> Choice:
    """Which algorithm proposes next, and why."""
    numeric = [d for d in space.dims if d.type in ("double", "int")]
    if n_objectives > 1:
        return Choice("tpe", "several objectives")
    if constrained:
        return Choice("tpe", "constraints")
    if len(numeric) < len(space.dims):
        if space.infinite:
            return Choice("tpe", "list or categorical parameters")
        if completed < LOCAL_SEARCH_AFTER:
            return Choice("tpe", f"a finite space with list or categorical parameters, "
                                 f"fewer than {LOCAL_SEARCH_AFTER} completed trials")
        return Choice("local-search", f"a finite space with list or categorical parameters, "
                                      f"{LOCAL_SEARCH_AFTER} or more completed trials")
    if len(numeric) < 2:
        return Choice("tpe", "fewer than two numeric parameters")
    at, sigma = switch_point(len(numeric))
    if all(d.size() * sigma <= 1 for d in numeric):
        # Each value's cell is wider than CMA-ES's first step: its proposals round back to
        # the incumbent, and the TPE, which draws whole values, does better there.
        return Choice("tpe", f"every numeric parameter has at most {int(1 / sigma)} values")
    if completed < at:
        return Choice("tpe", f"{len(numeric)} numeric parameters, fewer than {at} completed trials")
    if len(numeric) <= TRUST_REGION_MAX:
        return Choice("trust-region", f"{len(numeric)} numeric parameters, {at} or more completed trials", DELTA0)
    return Choice("cmaes", f"{len(numeric)} numeric parameters, {at} or more completed trials", sigma)


def _unseen_near(space: SearchSpace, params: dict[str, str], point: Any, seen: set, rng: Any) -> dict[str, str]:
    """A point not yet proposed near ``params`` (``point`` in the unit cube): the nearest
    free one in grid steps in a finite space, else ``point`` moved a little at random,
    else any free point."""
    import numpy as np

    if not space.infinite:
        near = space.nearest_free(params, seen, rng)
        return near if near is not None else space.free_point(seen, rng)
    for _ in range(100):
        jitter = np.clip(point + rng.normal(scale=1e-3, size=len(point)), 0.0, 1.0)
        near = {d.name: d.from_unit(float(u)) for d, u in zip(space.dims, jitter, strict=True)}
        if space.key(near) not in seen:
            return near
    return space.sample(rng)


class _WarmCMAES(CMAES):
    """CMA-ES whose first generation is centred on a given point of the unit cube."""

    def __init__(self, x0: dict[str, float], sigma: float) -> None:
        super().__init__()
        self.x0, self.sigma = x0, sigma

    def make_sampler(self, settings: dict[str, Any], seed: int | None, n_params: int) -> Any:
        from optuna.samplers import CmaEsSampler, RandomSampler

        return CmaEsSampler(x0=self.x0, sigma0=self.sigma, seed=seed, independent_sampler=RandomSampler(seed=seed))


class Auto(Algorithm):
    """Picks ``tpe``, a local search, the trust region or ``cmaes`` per experiment and budget
    (see the module docstring)."""

    name = "auto"
    multi_objective = True
    settings = {"random_state": Setting(seed)}

    def __init__(self) -> None:
        self._tpe = TPE()
        self._cma: tuple[tuple[str, str], _WarmCMAES] | None = None
        self._own_state: tuple[tuple[str, str], dict[str, Any]] = (("", ""), {})
        self.last: Choice | None = None

    def _choice(self, experiment: Experiment, trials: Sequence[TrialView]) -> Choice:
        obj = experiment.spec.objective
        n_objectives = 1 + len(obj.additional_objectives or []) if obj is not None else 1
        constrained = bool(obj is not None and obj.constraints)
        completed = len(_completed(trials))
        return choose(SearchSpace.from_experiment(experiment), n_objectives, constrained, completed)

    def suggest(
        self,
        experiment: Experiment,
        trials: Sequence[TrialView],
        count: int,
        state: dict[str, Any] | None = None,
    ) -> list[Assignment]:
        self.last = self._choice(experiment, trials)
        if self.last.algorithm == "tpe":
            return self._tpe.suggest(experiment, trials, count, state)
        if self.last.algorithm == "local-search":
            near = self._local_search(experiment, trials, count)
            if near:
                return near
            self.last = Choice("tpe", f"{self.last.reason}; every neighbour of the incumbent tried")
            return self._tpe.suggest(experiment, trials, count, state)
        key = (experiment.namespace or "", experiment.name or "")
        if self.last.algorithm == "trust-region":
            if state is None:  # a caller that keeps no state: one per experiment, held here
                if self._own_state[0] != key:
                    self._own_state = (key, {})
                state = self._own_state[1]
            proposals = self._trust_region(experiment, trials, count, state.setdefault("trust_region", {}))
            if proposals is not None:
                return proposals
            # The region has shrunk away in its basin: the TPE proposes, then it starts again
            # in the best basin not yet spent.
            return self._tpe.suggest(experiment, trials, count, state)
        if self._cma is None or self._cma[0] != key:  # started once per experiment
            self._cma = (key, _WarmCMAES(self._incumbent(experiment, trials), self.last.sigma))
        return self._cma[1].suggest(experiment, trials, count, state)

    def _trust_region(self, experiment: Experiment, trials: Sequence[TrialView], count: int,
                      state: dict[str, Any]) -> list[Assignment] | None:
        """Proposals of the quadratic trust region around the incumbent (``_trust_region``);
        ``state`` (the algorithm state's ``trust_region``) keeps its box, the steps out and
        the basins spent. None: the global model's turn (``count`` of its ``explore``)."""
        import numpy as np

        from ._trust_region import propose

        space = SearchSpace.from_experiment(experiment)
        obj = experiment.spec.objective
        sign = -1.0 if obj is not None and obj.type == "maximize" else 1.0
        done = _completed(trials)
        finished = {t.name for t in done}
        x = np.array([[d.to_unit(t.parameters[d.name]) for d in space.dims] for t in done])
        y = np.array([sign * float(t.objective) for t in done])  # type: ignore[arg-type]
        key_of = {t.name: space.key(t.parameters) for t in trials}  # each trial's point, once
        pending = {str(key_of[t.name]) for t in trials if t.state in ACTIVE_STATES}
        failed = {str(key_of[t.name]) for t in trials if t.state not in ACTIVE_STATES and t.name not in finished}
        free = np.array([not (d.size() == 1 or (not d.choices and d.low == d.high)) for d in space.dims])
        seed = self.parsed_settings(experiment)["random_state"]
        rng = np.random.default_rng(None if seed is None else [seed, len(trials)])
        seen = set(key_of.values())
        points = propose(x, y, [str(key_of[t.name]) for t in done], pending, failed, state, count, rng, free)
        if not points:
            state["explore"] = max(0, int(state.get("explore", 0)) - count)
            return None
        out: list[Assignment] = []
        for point, promise in points:
            params = {d.name: d.from_unit(float(u)) for d, u in zip(space.dims, point, strict=True)}
            if space.key(params) in seen:  # rounded (an int, a step) or clipped (a bound) onto a known point
                if promise is not None:
                    state["delta"] /= 2  # a model step that brings nothing new failed: a smaller box
                    promise = None
                params = _unseen_near(space, params, point, seen, rng)
            seen.add(space.key(params))
            if promise is not None:
                state["out"][str(space.key(params))] = promise
            out.append(Assignment(params))
        return out

    def _local_search(self, experiment: Experiment, trials: Sequence[TrialView], count: int) -> list[Assignment]:
        """Unseen neighbours of the incumbent (one grid step; ``SearchSpace.neighbours``), at
        random; nearer free points when more are asked than it has. None free: [] (the TPE's
        turn, which may find a better incumbent elsewhere)."""
        import numpy as np

        space = SearchSpace.from_experiment(experiment)
        best = _best(experiment, trials)
        seen = {space.key(t.parameters) for t in trials}
        free = [p for p in space.neighbours(best.parameters) if space.key(p) not in seen]
        seed = self.parsed_settings(experiment)["random_state"]
        rng = np.random.default_rng(None if seed is None else [seed, len(trials)])
        out: list[Assignment] = []
        while free and len(out) < count:
            out.append(Assignment(free.pop(int(rng.integers(len(free))))))
        seen.update(space.key(a.parameters) for a in out)
        while out and len(out) < count and len(seen) < space.size():
            near = space.nearest_free(best.parameters, seen, rng)
            if near is None:
                break
            seen.add(space.key(near))
            out.append(Assignment(near))
        return out

    @staticmethod
    def _incumbent(experiment: Experiment, trials: Sequence[TrialView]) -> dict[str, float]:
        best = _best(experiment, trials)
        space = SearchSpace.from_experiment(experiment)
        return {d.name: d.to_unit(best.parameters[d.name]) for d in space.dims}
