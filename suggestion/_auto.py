"""``auto``: an algorithm that picks one of ours per experiment, and may switch as it runs.

The choice is made again before each proposal from what the experiment is (its search
space, objectives, constraints and ``maxTrialCount``) and how far it has got (completed
trials). OptunaHub's AutoSampler is the anchor: a TPE where parameters are lists or
categorical or there are several objectives; a Gaussian process for small numeric
budgets, then CMA-ES warm-started from the trials so far. We keep its switch to CMA-ES
but not its Gaussian process: on our tables (docs/benchmarks.md) the TPE is the best or
tied best of ours at every budget up to 200 on HPOBench and NAS-Bench-201; on BBOB's quick
set our GP ranks better early but is level with Optuna's TPE at 100 trials, for 30 times
the CPU. So:

- several objectives, constraints, any list or categorical parameter, or fewer than two
  numeric parameters: ``tpe`` throughout;
- otherwise ``tpe`` until ``SWITCH_AT`` trials have completed, then ``cmaes`` started at
  the incumbent with a step of ``CMA_SIGMA`` of the unit range (its cost per proposal
  stays flat where the TPE's grows with the history).

``choose`` is the rule, kept pure so tests can read each decision.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from katib.spec import Experiment

from ._base import Algorithm, Assignment, Setting, TrialView, integer
from ._cmaes import CMAES
from ._space import SearchSpace
from ._tpe import TPE

SWITCH_AT = 250
CMA_SIGMA = 0.1
_COMPLETE = ("Succeeded", "EarlyStopped")


@dataclass(frozen=True)
class Choice:
    algorithm: str  # "tpe" or "cmaes"
    reason: str


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
    if completed < SWITCH_AT:
        return Choice("tpe", f"fewer than {SWITCH_AT} completed trials")
    return Choice("cmaes", f"numeric space, {SWITCH_AT} or more completed trials")


class _WarmCMAES(CMAES):
    """CMA-ES whose first generation is centred on a given point of the unit cube."""

    def __init__(self, x0: dict[str, float]) -> None:
        super().__init__()
        self.x0 = x0

    def make_sampler(self, settings: dict[str, Any], seed: int | None, n_params: int) -> Any:
        from optuna.samplers import CmaEsSampler, RandomSampler

        return CmaEsSampler(x0=self.x0, sigma0=CMA_SIGMA, seed=seed, independent_sampler=RandomSampler(seed=seed))


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
        completed = sum(1 for t in trials if t.state in _COMPLETE and t.objective is not None)
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
            self._cma = (key, _WarmCMAES(self._incumbent(experiment, trials)))
        return self._cma[1].suggest(experiment, trials, count, state)

    @staticmethod
    def _incumbent(experiment: Experiment, trials: Sequence[TrialView]) -> dict[str, float]:
        obj = experiment.spec.objective
        sign = -1.0 if obj is not None and obj.type == "maximize" else 1.0
        done = [t for t in trials if t.state in _COMPLETE and t.objective is not None]
        best = min(done, key=lambda t: sign * float(t.objective))  # type: ignore[arg-type]
        space = SearchSpace.from_experiment(experiment)
        return {d.name: d.to_unit(best.parameters[d.name]) for d in space.dims}
