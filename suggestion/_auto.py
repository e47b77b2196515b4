"""``auto``: an algorithm that picks one of ours per experiment, and may switch as it runs.

The choice is made again before each proposal from what the experiment is (its search
space, objectives and constraints) and how far it has got (completed trials). OptunaHub's
AutoSampler is the anchor: a TPE where parameters are lists or categorical or there are
several objectives; a Gaussian process for small numeric budgets, then CMA-ES
warm-started from the trials so far. We keep its switch to CMA-ES, much earlier, and not
its Gaussian process. On BBOB (docs/benchmarks.md, seeds it was not chosen on) a TPE for
the first few dozen trials, then CMA-ES started at the TPE's incumbent with a small step,
is ahead of Optuna's TPE on 17 of 24 functions at d = 10 and 22 of 24 at d = 20 by 200
trials, and level with it at d = 5, as the TPE alone is; our GP was not better than the
TPE there, for 30 times the CPU. So:

- several objectives, constraints, any list or categorical parameter, or fewer than two
  numeric parameters: ``tpe`` throughout (on HPOBench and NAS-Bench-201 it is the best or
  tied best of ours at every budget up to 200);
- where every numeric parameter has at most ``1 / σ`` values (20 integers, say: each
  value's cell is wider than CMA-ES's first step, so its proposals round back to the
  incumbent): ``tpe`` throughout;
- otherwise ``tpe`` until ``switch_point`` trials have completed (35 up to 10 numeric
  parameters, 25 above: the TPE's model thins out with the dimension), then ``cmaes``
  started at the incumbent with a step of 0.05 (0.1 above 10 parameters) of the unit
  range; its cost per proposal stays flat where the TPE's grows with the history.

``choose`` is the rule, kept pure so tests can read each decision.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from katib.spec import Experiment

from ._base import Algorithm, Assignment, Setting, TrialView, integer
from ._cmaes import CMAES
from ._space import SearchSpace
from ._tpe import TPE

# (up to this many numeric parameters, switch after this many completed trials, CMA-ES's
# step as a fraction of each parameter's unit range): chosen on BBOB at 2, 5, 10 and 20.
SWITCH_POINTS = ((10, 35, 0.05), (None, 25, 0.1))
_COMPLETE = ("Succeeded", "EarlyStopped")


def _completed(trials: Sequence[TrialView]) -> list[TrialView]:
    """The trials with a finite objective: a diverged one (NaN, inf) counts for nothing."""
    return [t for t in trials if t.state in _COMPLETE and t.objective is not None
            and math.isfinite(float(t.objective))]


@dataclass(frozen=True)
class Choice:
    algorithm: str  # "tpe" or "cmaes"
    reason: str
    sigma: float = 0.0  # CMA-ES's first step, of the unit range


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
        return Choice("tpe", "list or categorical parameters")
    if len(numeric) < 2:
        return Choice("tpe", "fewer than two numeric parameters")
    at, sigma = switch_point(len(numeric))
    if all(d.size() * sigma <= 1 for d in numeric):
        # Each value's cell is wider than CMA-ES's first step: its proposals round back to
        # the incumbent, and the TPE, which draws whole values, does better there.
        return Choice("tpe", f"every numeric parameter has at most {int(1 / sigma)} values")
    if completed < at:
        return Choice("tpe", f"{len(numeric)} numeric parameters, fewer than {at} completed trials")
    return Choice("cmaes", f"{len(numeric)} numeric parameters, {at} or more completed trials", sigma)


class _WarmCMAES(CMAES):
    """CMA-ES whose first generation is centred on a given point of the unit cube."""

    def __init__(self, x0: dict[str, float], sigma: float) -> None:
        super().__init__()
        self.x0, self.sigma = x0, sigma

    def make_sampler(self, settings: dict[str, Any], seed: int | None, n_params: int) -> Any:
        from optuna.samplers import CmaEsSampler, RandomSampler

        return CmaEsSampler(x0=self.x0, sigma0=self.sigma, seed=seed, independent_sampler=RandomSampler(seed=seed))


class Auto(Algorithm):
    """Picks ``tpe`` or ``cmaes`` per experiment and budget (see the module docstring)."""

    name = "auto"
    multi_objective = True
    settings = {"random_state": Setting(integer(0))}

    def __init__(self) -> None:
        self._tpe = TPE()
        self._cma: tuple[tuple[str, str], _WarmCMAES] | None = None
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
        key = (experiment.namespace or "", experiment.name or "")
        if self._cma is None or self._cma[0] != key:  # started once per experiment
            self._cma = (key, _WarmCMAES(self._incumbent(experiment, trials), self.last.sigma))
        return self._cma[1].suggest(experiment, trials, count, state)

    @staticmethod
    def _incumbent(experiment: Experiment, trials: Sequence[TrialView]) -> dict[str, float]:
        obj = experiment.spec.objective
        sign = -1.0 if obj is not None and obj.type == "maximize" else 1.0
        best = min(_completed(trials), key=lambda t: sign * float(t.objective))  # type: ignore[arg-type]
        space = SearchSpace.from_experiment(experiment)
        return {d.name: d.to_unit(best.parameters[d.name]) for d in space.dims}
