"""Status arithmetic: conditions, metric reduction, and the experiment status derived
from its trials (never maintained by hand in two places)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from katib.spec import Experiment
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
    "MetricsUnavailable": ("TrialMetricsUnavailable", "Metrics are not available"),
}


def rfc3339(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def set_condition(
    conditions: list[dict[str, Any]], type_: str, status: str, reason: str, message: str,
    now: float | None = None,
) -> None:
    """Add or update a condition in place (transition time moves only on a change)."""
    stamp = rfc3339(now if now is not None else time.time())
    for cond in conditions:
        if cond["type"] == type_:
            if cond.get("status") != status:
                cond["lastTransitionTime"] = stamp
            cond.update(status=status, reason=reason, message=message, lastUpdateTime=stamp)
            return
    conditions.append({
        "type": type_, "status": status, "reason": reason, "message": message,
        "lastUpdateTime": stamp, "lastTransitionTime": stamp,
    })


def remove_condition(conditions: list[dict[str, Any]], type_: str) -> None:
    conditions[:] = [c for c in conditions if c["type"] != type_]


def has_condition(conditions: Iterable[dict[str, Any]], type_: str) -> bool:
    return any(c["type"] == type_ and c.get("status") == "True" for c in conditions)


def experiment_phase(conditions: Sequence[dict[str, Any]]) -> str:
    """The one word a table shows: the newest true condition of note."""
    for type_ in ("Succeeded", "Failed", "Restarting", "Running", "Created"):
        if has_condition(conditions, type_):
            return type_
    return "Unknown"


def condition_reason(conditions: Sequence[dict[str, Any]], type_: str) -> str | None:
    for cond in conditions:
        if cond["type"] == type_ and cond.get("status") == "True":
            return cond.get("reason")
    return None


def mark_trial(t: TrialRecord, state: str, message: str | None = None, reason: str | None = None) -> None:
    """Move a trial to ``state`` with Katib's condition bookkeeping."""
    now = time.time()
    default_reason, default_message = TRIAL_REASONS[state]
    if state in FINAL_TRIAL_STATES:
        for cond in t.conditions:
            if cond["type"] == "Running" and cond.get("status") == "True":
                set_condition(t.conditions, "Running", "False", cond.get("reason", ""), cond.get("message", ""), now)
    set_condition(t.conditions, state, "True", reason or default_reason, message or default_message, now)
    t.state = state


class MetricReducer:
    """Running min / max / latest of each metric of one trial."""

    def __init__(self) -> None:
        self._m: dict[str, list[Any]] = {}

    def add(self, when: float, name: str, value: str) -> None:
        number = float(value)
        cur = self._m.get(name)
        if cur is None:
            self._m[name] = [number, value, number, value, when, value]
            return
        if number < cur[0]:
            cur[0], cur[1] = number, value
        if number > cur[2]:
            cur[2], cur[3] = number, value
        if when >= cur[4]:
            cur[4], cur[5] = when, value

    def observation(self, names: Iterable[str]) -> dict[str, dict[str, str]]:
        out = {}
        for name in names:
            cur = self._m.get(name)
            if cur is None:
                out[name] = {"min": UNAVAILABLE, "max": UNAVAILABLE, "latest": UNAVAILABLE}
            else:
                out[name] = {"min": cur[1], "max": cur[3], "latest": cur[5]}
        return out

    def has(self, name: str) -> bool:
        return name in self._m


def metric_value(observation: dict[str, dict[str, str]] | None, name: str, strategy: str) -> float | None:
    """The trial's value of ``name`` under a metric strategy (min, max or latest)."""
    if not observation or name not in observation:
        return None
    text = observation[name].get(strategy)
    if text is None or text == UNAVAILABLE:
        return None
    try:
        return float(text)
    except ValueError:
        return None


def strategies(exp: Experiment) -> dict[str, str]:
    obj = exp.spec.objective
    assert obj is not None
    return {s.name: s.value for s in obj.metric_strategies or [] if s.name and s.value}


def metric_names(exp: Experiment) -> list[str]:
    obj = exp.spec.objective
    assert obj is not None and obj.objective_metric_name
    return [obj.objective_metric_name, *(obj.additional_metric_names or [])]


def counts_of(trials: Iterable[TrialRecord]) -> Counts:
    c: dict[str, int] = dict.fromkeys(TRIAL_STATES, 0)
    for t in trials:
        c[t.state] = c.get(t.state, 0) + 1
    return Counts(
        pending=c["Created"], running=c["Running"], succeeded=c["Succeeded"], failed=c["Failed"],
        killed=c["Killed"], early_stopped=c["EarlyStopped"], metrics_unavailable=c["MetricsUnavailable"],
    )


def best_trial(exp: Experiment, trials: Iterable[TrialRecord]) -> TrialRecord | None:
    maximize = exp.spec.objective is not None and exp.spec.objective.type == "maximize"
    best: TrialRecord | None = None
    for t in trials:
        if t.state not in ("Succeeded", "EarlyStopped") or t.objective is None:
            continue
        if best is None or (t.objective > best.objective if maximize else t.objective < best.objective):  # type: ignore[operator]
            best = t
    return best


def _metrics_list(observation: dict[str, dict[str, str]] | None) -> list[dict[str, str]]:
    return [{"name": name, **values} for name, values in (observation or {}).items()]


def experiment_status(
    exp: Experiment, trials: Sequence[TrialRecord], base: dict[str, Any]
) -> dict[str, Any]:
    """The status object Katib would show: ``base`` (conditions, times) plus what the
    trials say (counts, per-state lists, ``currentOptimalTrial``)."""
    lists: dict[str, list[str]] = {s: [] for s in TRIAL_STATES}
    for t in trials:
        lists.setdefault(t.state, []).append(t.name)
    status = {k: v for k, v in base.items() if k in ("startTime", "completionTime", "conditions")}
    status["lastReconcileTime"] = rfc3339(time.time())
    best = best_trial(exp, trials)
    status["currentOptimalTrial"] = {
        "bestTrialName": best.name if best else "",
        "parameterAssignments": best.assignments if best else [],
        "observation": {"metrics": _metrics_list(best.observation) if best else []},
    }
    for key, state in (
        ("pendingTrialList", "Created"), ("runningTrialList", "Running"),
        ("succeededTrialList", "Succeeded"), ("failedTrialList", "Failed"),
        ("killedTrialList", "Killed"), ("earlyStoppedTrialList", "EarlyStopped"),
        ("metricsUnavailableTrialList", "MetricsUnavailable"),
    ):
        if lists[state]:
            status[key] = lists[state]
    status.update(
        trials=len(trials), trialsSucceeded=len(lists["Succeeded"]), trialsFailed=len(lists["Failed"]),
        trialsKilled=len(lists["Killed"]), trialsPending=len(lists["Created"]),
        trialsRunning=len(lists["Running"]), trialsEarlyStopped=len(lists["EarlyStopped"]),
        trialMetricsUnavailable=len(lists["MetricsUnavailable"]),
    )
    return status
