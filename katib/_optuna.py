"""``ExperimentResult.to_optuna_study``: an experiment as an in-memory Optuna study.

Each parameter's distribution comes from the search space (double → FloatDistribution,
int → IntDistribution, log-uniform and log-normal as ``log=True``, ``step`` kept where
Optuna allows it; categorical and discrete → CategoricalDistribution). A distribution is
the same for every trial, as Optuna's importance evaluators require; where a trial's value
lies off it (a step that does not divide the range, a warm-start point outside), the step
is dropped and the range widened to hold every value.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._results import ExperimentResult

_LOG = ("logUniform", "logNormal")


def to_study(result: ExperimentResult) -> Any:
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
    from optuna.trial import TrialState

    states = {"Succeeded": TrialState.COMPLETE, "EarlyStopped": TrialState.PRUNED, "Failed": TrialState.FAIL,
              "MetricsUnavailable": TrialState.FAIL, "Killed": TrialState.FAIL}
    ended = [t for t in result.trials if t.state in states]
    distributions: dict[str, Any] = {}
    for name, spec in result._space.items():
        values = [t.params[name] for t in ended if name in t.params]
        space = spec.get("feasibleSpace") or {}
        ptype = spec.get("parameterType")
        if ptype in ("double", "int"):
            cls = IntDistribution if ptype == "int" else FloatDistribution
            number = int if ptype == "int" else float
            low, high = number(float(space["min"])), number(float(space["max"]))
            log = space.get("distribution") in _LOG and low > 0
            step = number(float(space["step"])) if space.get("step") and not log else None
            dist = _fitting(cls, low, high, log, step, values)
        else:
            choices = [result.typed(name, v) for v in space.get("list") or []]
            choices += [v for v in values if v not in choices]
            dist = CategoricalDistribution(choices)
        distributions[name] = dist
    direction = optuna.study.StudyDirection.MINIMIZE if result.direction == "minimize" \
        else optuna.study.StudyDirection.MAXIMIZE
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "A new study created in memory" line per call
    try:
        study = optuna.create_study(study_name=result.name, direction=direction)
    finally:
        optuna.logging.set_verbosity(verbosity)
    trials = []
    for t in ended:
        state = states[t.state]
        if state == TrialState.COMPLETE and t.value is None:
            state = TrialState.FAIL  # succeeded without the objective metric: nothing to plot
        params = {k: v for k, v in t.params.items() if k in distributions}
        trials.append(optuna.trial.create_trial(
            state=state, value=t.value if state == TrialState.COMPLETE else None, params=params,
            distributions={k: distributions[k] for k in params},
            user_attrs={"katib_trial": t.name, **{f"metric_{k}": v for k, v in t.metrics.items()}}))
    study.add_trials(trials)
    return study


def _fitting(cls: Any, low: Any, high: Any, log: bool, step: Any, values: list[Any]) -> Any:
    kwargs: dict[str, Any] = {"log": log}
    if step is not None and not (cls.__name__ == "IntDistribution" and step == 1):
        kwargs["step"] = step
    dist = cls(low, high, **kwargs)
    if all(_contains(dist, v) for v in values):
        return dist
    numbers = [v for v in values if isinstance(v, (int, float))]
    low, high = min([low, *numbers]), max([high, *numbers])
    return cls(low, high, log=log and low > 0)


def _contains(dist: Any, value: Any) -> bool:
    try:
        return bool(dist._contains(dist.to_internal_repr(value)))
    except (TypeError, ValueError):
        return False
