"""Status arithmetic: conditions, metric reduction, and the experiment status derived
from its trials (never maintained by hand in two places)."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from katib.spec import (
    Condition,
    Experiment,
    ExperimentStatus,
    Observation,
    OptimalTrial,
    ParameterAssignment,
)
from katib.store import TrialRecord

from ._arithmetic import Counts

UNAVAILABLE = "unavailable"
TRIAL_STATES = ("Created", "Running", "Succeeded", "Failed", "Killed", "EarlyStopped", "MetricsUnavailable")
FINAL_TRIAL_STATES = frozenset(TRIAL_STATES[2:])
ACTIVE_TRIAL_STATES = frozenset(TRIAL_STATES[:2])
TRIAL_REASONS = {
    "Created": ("TrialCreated", "Trial is created"),
    "Running": ("TrialRunning", "Trial is running"),
    "Succeeded": ("TrialSucceeded", "Trial has succeeded"),
    "Failed": ("TrialFailed", "Trial has failed"),
    "Killed": ("TrialKilled", "Trial has been killed"),
    "EarlyStopped": ("TrialEarlyStopped", "Trial is early stopped"),
    "MetricsUnavailable": ("MetricsUnavailable", "Metrics are not available"),  # Katib's TrialMetricsUnavailableReason
}


def failed_condition(job_reason: str, message: str) -> tuple[str, str]:
    """A failed trial's reason and message as Katib's trial controller writes them
    (``UpdateTrialStatusCondition``): ``TrialFailed. Job reason: R`` and ``Trial has failed.
    Job message: M``, each plain where the job says nothing."""
    reason, text = TRIAL_REASONS["Failed"]
    return (f"{reason}. Job reason: {job_reason}" if job_reason else reason,
            f"{text}. Job message: {message}" if message else text)


# Katib's messages for the condition that ends an experiment, by reason.
END_MESSAGES = {
    "ExperimentGoalReached": "Experiment has succeeded because Objective goal has reached",
    "ExperimentMaxTrialsReached": "Experiment has succeeded because max trial count has reached",
    "ExperimentSuggestionEndReached": "Experiment has succeeded because suggestion service has reached the end",
    "ExperimentFailed": "Experiment has failed because max failed count has reached",
}
# How a trial's failure message joins what the trial printed last (see the controller).
LAST_OUTPUT = "; last output: "


def rfc3339(ts: float | None) -> str | None:
    if ts is None:
        return None
    try:
        dt = datetime.fromtimestamp(ts, UTC)
    except (ValueError, OverflowError, OSError):  # NaN, or past what RFC 3339 writes (an older store's row)
        dt = datetime.max.replace(tzinfo=UTC, microsecond=0) if ts > 0 else datetime.min.replace(tzinfo=UTC)
    return f"{dt.year:04d}" + dt.strftime("-%m-%dT%H:%M:%SZ")  # %Y gives "1" for Katib's zero time


def set_condition(
    conditions: list[Condition], type_: str, status: str, reason: str, message: str,
    now: float | None = None,
) -> None:
    """Add or update a condition in place, as Katib's ``setCondition`` does: a condition
    whose status or reason changes moves to the end of the list (removed, then appended),
    so the list reads in the order things happened and its last entry is the newest (what
    Katib's UI shows, ``GetLastConditionType``); its transition time moves only when its
    status changes. Only the message (and update time) of an unchanged condition is
    refreshed in place (Katib leaves even those)."""
    stamp = rfc3339(now if now is not None else time.time())
    for i, cond in enumerate(conditions):
        if cond.type == type_:
            if cond.status == status and cond.reason == reason:
                cond.message, cond.last_update_time = message, stamp
                return
            transition = cond.last_transition_time if cond.status == status else stamp
            del conditions[i]
            conditions.append(Condition(type=type_, status=status, reason=reason, message=message,
                                        last_update_time=stamp, last_transition_time=transition))
            return
    conditions.append(Condition(type=type_, status=status, reason=reason, message=message,
                                last_update_time=stamp, last_transition_time=stamp))


def remove_condition(conditions: list[Condition], type_: str) -> None:
    conditions[:] = [c for c in conditions if c.type != type_]


def has_condition(conditions: Iterable[Condition], type_: str) -> bool:
    return any(c.type == type_ and c.status == "True" for c in conditions)


def condition_of(conditions: Sequence[Condition], type_: str) -> Condition | None:
    """The newest condition of a type (``None`` if there is none)."""
    return next((c for c in reversed(conditions) if c.type == type_), None)


def is_completed(status: ExperimentStatus) -> bool:
    """Whether the experiment has ended (Succeeded or Failed)."""
    return has_condition(status.conditions, "Succeeded") or has_condition(status.conditions, "Failed")


def experiment_phase(conditions: Sequence[Condition]) -> str:
    """The one word a table shows: the newest true condition, the last in Katib's order
    (``set_condition``), as Katib's UI shows the last condition's type. A restarted
    experiment keeps its ``Restarting`` condition (as Katib does): it reads Restarting
    until it runs again, Running while it runs, Succeeded or Failed once it ends."""
    for cond in reversed(conditions):
        if cond.status == "True" and cond.type in EXPERIMENT_CONDITIONS:
            return cond.type
    return "Unknown"


# Katib's experiment condition types (ExperimentConditionType), in the order they come.
EXPERIMENT_CONDITIONS = ("Created", "Running", "Restarting", "Succeeded", "Failed")


def mark_trial(t: TrialRecord, state: str, message: str | None = None, reason: str | None = None) -> None:
    """Move a trial to ``state`` with Katib's condition bookkeeping."""
    now = time.time()
    default_reason, default_message = TRIAL_REASONS[state]
    if state in FINAL_TRIAL_STATES:
        for cond in t.conditions:
            if cond.type == "Running" and cond.status == "True":
                set_condition(t.conditions, "Running", "False", cond.reason or "", cond.message or "", now)
    set_condition(t.conditions, state, "True", reason or default_reason, message or default_message, now)
    t.state = state


class MetricReducer:
    """Running min / max / latest of each metric of one trial, as Katib's trial controller
    reduces the observation log (``getMetrics`` in trial_controller_util.go): ``min`` and
    ``max`` over the values that are numbers, ``latest`` the newest value of any kind. A
    text metric (a DARTS genotype) has a latest value only: its min and max stay
    ``unavailable``, and its strategy's value falls back to the latest (``metric_value``,
    ``shown_value``), as Katib's ``getObjectiveMetricValue`` does."""

    def __init__(self) -> None:
        # name -> [min number, its text, max number, its text, latest's time, latest's text]
        self._m: dict[str, list[Any]] = {}

    def add(self, when: float, name: str, value: str) -> None:
        number: float | None
        try:
            number = float(value)
        except ValueError:
            number = None
            if not value.strip():
                return  # nothing reported
        else:
            if not math.isfinite(number):
                return  # nan, inf, 1e400: read as a number, and not one (docs/algorithms.md)
        cur = self._m.get(name)
        if cur is None:
            cur = self._m[name] = [None, UNAVAILABLE, None, UNAVAILABLE, None, UNAVAILABLE]
        if number is not None:
            if cur[0] is None:
                cur[0], cur[1], cur[2], cur[3] = number, value, number, value
            elif number < cur[0]:
                cur[0], cur[1] = number, value
            elif number > cur[2]:
                cur[2], cur[3] = number, value
        if cur[4] is None or when >= cur[4]:  # a tie: the one reported later
            cur[4], cur[5] = when, value

    def not_a_number(self, name: str, when: float) -> None:
        """The metric's newest value (at ``when``) read as a number and was none (``nan``,
        ``inf``: a diverged run): its min and max keep the numbers before it, its latest is
        ``unavailable`` unless a value came later. A finite latest from before it was shown as
        the latest, and ranked under the ``latest`` strategy."""
        cur = self._m.get(name)
        if cur is None:
            return  # no value before it: nothing reported, as before
        if cur[4] is None or when >= cur[4]:
            cur[4], cur[5] = when, UNAVAILABLE

    def observation(self, names: Iterable[str]) -> dict[str, dict[str, str]]:
        out = {}
        for name in names:
            cur = self._m.get(name)
            if cur is None:
                out[name] = {"min": UNAVAILABLE, "max": UNAVAILABLE, "latest": UNAVAILABLE}
            else:
                out[name] = {"min": cur[1], "max": cur[3], "latest": cur[5]}
        return out


def metric_value(observation: dict[str, dict[str, str]] | None, name: str, strategy: str) -> float | None:
    """The trial's value of ``name`` under a metric strategy (min, max or latest)."""
    if not observation or name not in observation:
        return None
    text = strategy_value(observation[name], strategy)
    if text is None or text == UNAVAILABLE:
        return None
    return finite(text)


def finite(text: Any) -> float | None:
    """``text`` as a number, when it is a finite one: None for text, and for what reads as a
    number and is none (``nan``, ``inf``, ``1e400``), which no trial's result can be."""
    try:
        number = float(text)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def numbers(values: Iterable[str]) -> list[float]:
    """The finite numbers among metric values (text values are left out)."""
    return [number for v in values if (number := finite(v)) is not None]


def reported(observation: dict[str, dict[str, str]] | None, name: str) -> bool:
    """Whether the trial reported ``name`` at all (a text objective, such as DARTS'
    ``Best-Genotype``, has no number but a trial that reports it has succeeded)."""
    return bool(observation and observation.get(name, {}).get("latest", UNAVAILABLE) != UNAVAILABLE)


def default_strategy(objective_type: str | None) -> str:
    """Katib's metric strategy for a metric that names none: ``min`` when the objective is
    minimized, ``max`` when maximized (``latest`` otherwise)."""
    return {"minimize": "min", "maximize": "max"}.get(objective_type or "", "latest")


def metric_strategies(objective: Mapping[str, Any]) -> dict[str, str]:
    """Every metric's strategy, from a spec's objective as Katib writes it (camelCase): the
    ``metricStrategies`` given, the defaults for the others (``katib.spec``'s
    ``_default_objective``): Katib's, by the objective's direction; an additional objective's
    by its own; ``latest`` for a metric only a constraint reads. One trial has one value per
    metric, the one its strategy picks, on every screen and in every comparison.

    >>> metric_strategies({"type": "minimize", "objectiveMetricName": "loss",
    ...                    "metricStrategies": [{"name": "acc", "value": "latest"}]})
    {'loss': 'min', 'acc': 'latest'}
    """
    default = default_strategy(objective.get("type"))
    own = {a.get("metricName"): default_strategy(a.get("type")) for a in objective.get("additionalObjectives") or []}
    bounded = {c.get("metricName") for c in objective.get("constraints") or []}
    names = [objective.get("objectiveMetricName"), *(objective.get("additionalMetricNames") or []), *own, *bounded]
    out = {name: default for name in names if name}
    out.update({name: "latest" for name in bounded if name and name != objective.get("objectiveMetricName")})
    out.update({name: value for name, value in own.items() if name})
    out.update({s["name"]: s["value"] for s in objective.get("metricStrategies") or [] if s.get("name") and s.get("value")})
    return out


def shown_value(observation: Mapping[str, Mapping[str, str]] | None, name: str, strategies: Mapping[str, str]) -> str:
    """The text a screen shows for a trial's metric: the value its strategy picks (``""``
    when the trial has no such metric; ``unavailable`` when it never reported it)."""
    entry = (observation or {}).get(name) or {}
    return strategy_value(entry, strategies.get(name) or "latest", "")


def strategy_value(entry: Mapping[str, str], strategy: str, default: Any = None) -> Any:
    """A metric's value under its strategy, Katib's way: ``min`` or ``max`` that is
    ``unavailable`` (the metric never reported a number: a text metric) falls back to the
    ``latest`` value (``getObjectiveMetricValue`` in status_util.go, and what the
    suggestion service is given, ``convertTrialObservation``)."""
    value = entry.get(strategy, default)
    if strategy in ("min", "max") and value == UNAVAILABLE:
        return entry.get("latest", value)
    return value


def strategies(exp: Experiment) -> dict[str, str]:
    """``metric_strategies`` of an experiment model."""
    obj = exp.spec.objective
    assert obj is not None
    return metric_strategies(obj.model_dump(by_alias=True, exclude_none=True, mode="json"))


def metric_names(exp: Experiment) -> list[str]:
    obj = exp.spec.objective
    assert obj is not None and obj.objective_metric_name
    return [obj.objective_metric_name, *(obj.additional_metric_names or [])]


WARM_START_LABEL = "katib.kubeflow.org/warm-start"


def is_warm_start(t: TrialRecord) -> bool:
    return t.labels.get(WARM_START_LABEL) == "true"


def counts_of(trials: Iterable[TrialRecord], budget: bool = False) -> Counts:
    """Trials by state; with ``budget``, without warm-start trials (they use none of it)."""
    c: dict[str, int] = dict.fromkeys(TRIAL_STATES, 0)
    for t in trials:
        if budget and is_warm_start(t):
            continue
        c[t.state] = c.get(t.state, 0) + 1
    return Counts(
        pending=c["Created"], running=c["Running"], succeeded=c["Succeeded"], failed=c["Failed"],
        killed=c["Killed"], early_stopped=c["EarlyStopped"], metrics_unavailable=c["MetricsUnavailable"],
    )


class Scoring:
    """How trials compare: the objectives (the first is Katib's), and the constraints.

    A constraint's *violation* is how far the metric lies outside ``[min, max]`` (0 when
    inside; a metric never reported counts as violated). Feasible trials rank first; among
    infeasible ones, the smaller total violation ranks first (what an algorithm is told);
    only a feasible trial is ever the best (``best_trial``).
    """

    def __init__(self, exp: Experiment) -> None:
        obj = exp.spec.objective
        assert obj is not None and obj.objective_metric_name and obj.type
        self.strategies = strategies(exp)
        self.objectives: list[tuple[str, bool]] = [(obj.objective_metric_name, obj.type == "maximize")]
        self.objectives += [(a.metric_name or "", a.type == "maximize") for a in obj.additional_objectives or []]
        self.constraints = [
            (c.metric_name or "", float(c.min) if c.min is not None else None, float(c.max) if c.max is not None else None)
            for c in obj.constraints or []
        ]

    @property
    def multi_objective(self) -> bool:
        return len(self.objectives) > 1

    def values(self, observation: dict[str, dict[str, str]] | None) -> tuple[float, ...] | None:
        out = []
        for name, _ in self.objectives:
            v = metric_value(observation, name, self.strategies[name])
            if v is None:
                return None
            out.append(v)
        return tuple(out)

    def violations(self, observation: dict[str, dict[str, str]] | None) -> tuple[float, ...]:
        out = []
        for name, lo, hi in self.constraints:
            v = metric_value(observation, name, self.strategies[name])
            if v is None:
                out.append(float("inf"))
            else:
                out.append(max(0.0, (lo - v) if lo is not None else 0.0, (v - hi) if hi is not None else 0.0))
        return tuple(out)

    def feasible(self, observation: dict[str, dict[str, str]] | None) -> bool:
        return all(v == 0 for v in self.violations(observation))

    def rank_key(self, t: TrialRecord) -> tuple[float, float]:
        """Smaller is better: (total violation, primary objective in the minimising sense)."""
        violation = sum(self.violations(t.observation))
        assert t.objective is not None
        return violation, (-t.objective if self.objectives[0][1] else t.objective)


def _scored(trials: Iterable[TrialRecord]) -> list[TrialRecord]:
    return [t for t in trials if t.state in ("Succeeded", "EarlyStopped") and t.objective is not None]


def best_trial(exp: Experiment, trials: Iterable[TrialRecord]) -> TrialRecord | None:
    """Katib's ``currentOptimalTrial``: the best primary objective among the feasible trials;
    None while none is feasible (an infeasible trial is no result, as Optuna's
    ``best_trial`` under constraints). With a text objective (a DARTS genotype), the latest
    trial that succeeded."""
    scoring = Scoring(exp)
    trials = list(trials)
    candidates = _scored(trials)
    if scoring.constraints and candidates:
        candidates = [t for t in candidates if scoring.feasible(t.observation)]
        return min(candidates, key=scoring.rank_key) if candidates else None
    if candidates:
        return min(candidates, key=scoring.rank_key)
    texts = [t for t in trials if t.state == "Succeeded"]
    return max(texts, key=lambda t: t.completion_time or 0.0) if texts else None


def pareto_front(exp: Experiment, trials: Iterable[TrialRecord]) -> list[TrialRecord]:
    """The feasible trials no other feasible trial beats on every objective."""
    scoring = Scoring(exp)
    points = []
    for t in _scored(trials):
        values = scoring.values(t.observation)
        if values is not None and scoring.feasible(t.observation):
            points.append((tuple(-v if mx else v for v, (_, mx) in zip(values, scoring.objectives, strict=True)), t))
    points.sort(key=lambda p: p[0])
    front: list[tuple[tuple[float, ...], TrialRecord]] = []
    for vec, t in points:
        if not any(all(a <= b for a, b in zip(f, vec, strict=True)) and f != vec for f, _ in front):
            front.append((vec, t))
    return [t for _, t in front]


def no_result_note(objective: str, trials: Iterable[TrialRecord], constraints: list[dict[str, Any]] | None = None) -> str:
    """Why an experiment has no best trial: no trial met the objective's ``constraints``
    (Katib objective's ``constraints`` as written); or no trial reported the objective
    metric, with the trials' most common failure (grouped by state, reason and message
    before the trial's last output), quoted with one trial's full message.

    >>> no_result_note("loss", [])
    "no trial reported the objective metric 'loss' (no trial ran)"
    """
    trials = list(trials)
    scored = len(_scored(trials))
    if constraints and scored:
        rules = ", ".join(f"{c.get('metricName')} in [{c.get('min', '-inf')}, {c.get('max', 'inf')}]" for c in constraints)
        return (f"no trial met the objective's constraints ({rules}): {scored} trial(s) reported {objective!r}, "
                "each outside at least one")
    ended = [t for t in trials if t.state in FINAL_TRIAL_STATES and not is_warm_start(t)]
    head = f"no trial reported the objective metric {objective!r}"
    if any(numbers(((t.observation or {}).get(objective) or {}).values()) for t in ended):
        # Some did, and failed (or were stopped) after: "reported none" was untrue beside their values.
        head = f"no trial ended with a result for the objective metric {objective!r}"
    if not ended:
        return f"{head} (no trial ran)"
    # A trial killed (the experiment's end kills those still running) says nothing of why
    # none reported: the others' outcome is the cause, however many were killed.
    causes = [t for t in ended if t.state != "Killed"] or ended
    killed = len(ended) - len(causes)
    groups: dict[tuple[str, str, str], list[str]] = {}
    for t in causes:
        cond = condition_of(t.conditions, t.state)
        message = (cond.message if cond else None) or ""
        reason = (cond.reason if cond else None) or ""
        groups.setdefault((t.state, reason, message.split(LAST_OUTPUT, 1)[0]), []).append(message)
    (state, reason, _), messages = max(groups.items(), key=lambda kv: len(kv[1]))  # first of the largest
    others = f", {killed} killed" if killed else ""
    return (f"{head}; most common outcome ({len(messages)} of {len(ended)} trials{others}): "
            f"{state} ({reason}): {messages[0]}")


def found_nothing(trials: Iterable[TrialRecord]) -> list[TrialRecord] | None:
    """The trials an experiment with ``spec.warmStart`` results ran, when every one of them
    ended without a result (none Succeeded or EarlyStopped); None otherwise: a search that
    found results, even worse ones, or that has run nothing yet, has done its work."""
    trials = list(trials)
    if not any(is_warm_start(t) for t in trials):
        return None
    ran = [t for t in trials if not is_warm_start(t) and t.state in FINAL_TRIAL_STATES]
    if not ran or any(t.state in ("Succeeded", "EarlyStopped") for t in ran):
        return None
    return ran


def result_note(objective: str, trials: Iterable[TrialRecord], constraints: list[dict[str, Any]] | None = None) -> str:
    """Why an ended experiment has no best trial: its own trials found nothing while it had
    ``spec.warmStart`` results (which are no result of its own), or ``no_result_note``."""
    trials = list(trials)
    ran = found_nothing(trials)
    if ran:
        return ("every trial this experiment ran ended without a result, and results given in spec.warmStart "
                f"are none of its own: {no_result_note(objective, ran, constraints)}")
    return no_result_note(objective, trials, constraints)


def optimal_trial(t: TrialRecord | None) -> OptimalTrial:
    """Katib's ``currentOptimalTrial`` for a trial (empty for none)."""
    return OptimalTrial(
        best_trial_name=t.name if t else "",
        parameter_assignments=[ParameterAssignment.model_validate(a) for a in t.assignments] if t else [],
        observation=Observation.of(t.observation if t else None),
    )


def _note_no_result(conditions: list[Condition], exp: Experiment, trials: Sequence[TrialRecord]) -> None:
    """An ended experiment without a best trial keeps Katib's condition (type and reason)
    and says in its message that there is no result, and why."""
    obj = exp.spec.objective
    constraints = [c.to_dict() for c in (obj.constraints or [])] if obj is not None else []
    for cond in conditions:
        if cond.type in ("Succeeded", "Failed") and cond.status == "True" and cond.reason in END_MESSAGES:
            cond.message = f"{END_MESSAGES[cond.reason]}; {result_note(metric_names(exp)[0], trials, constraints)}"


def experiment_status(exp: Experiment, trials: Sequence[TrialRecord], base: ExperimentStatus) -> ExperimentStatus:
    """The status object Katib would show: ``base``'s conditions and times plus what the
    trials say (counts, per-state lists, ``currentOptimalTrial``)."""
    lists: dict[str, list[str]] = {s: [] for s in TRIAL_STATES}
    for t in trials:
        lists.setdefault(t.state, []).append(t.name)
    best = best_trial(exp, trials)
    if best is not None and is_warm_start(best) and is_completed(base) and found_nothing(trials):
        best = None  # the search found nothing: a known result given to it is not its result
    status = ExperimentStatus(
        start_time=base.start_time, completion_time=base.completion_time,
        conditions=[c.model_copy() for c in base.conditions],
        last_reconcile_time=rfc3339(time.time()), current_optimal_trial=optimal_trial(best),
    )
    if best is None:
        _note_no_result(status.conditions, exp, trials)
    if Scoring(exp).multi_objective:
        status.pareto_front = [optimal_trial(t) for t in pareto_front(exp, trials)]
    status.pending_trial_list = lists["Created"] or None
    status.running_trial_list = lists["Running"] or None
    status.succeeded_trial_list = lists["Succeeded"] or None
    status.failed_trial_list = lists["Failed"] or None
    status.killed_trial_list = lists["Killed"] or None
    status.early_stopped_trial_list = lists["EarlyStopped"] or None
    status.metrics_unavailable_trial_list = lists["MetricsUnavailable"] or None
    status.trials = len(trials)
    status.trials_succeeded, status.trials_failed = len(lists["Succeeded"]), len(lists["Failed"])
    status.trials_killed, status.trials_pending = len(lists["Killed"]), len(lists["Created"])
    status.trials_running, status.trials_early_stopped = len(lists["Running"]), len(lists["EarlyStopped"])
    status.trial_metrics_unavailable = len(lists["MetricsUnavailable"])
    return status
