"""Katib-shaped objects built from store records: what the CLI prints and the API serves.

One set of status objects for every surface: ``experiment`` and ``trial`` build the typed
``ExperimentObject`` and ``Trial`` (``katib.spec``'s models) that ``kubectl get experiment
-o yaml`` / ``get trial`` would show; ``experiment_object`` and ``trial_object`` are their
Katib JSON (camelCase, unset fields left out), for a screen or a file.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from katib.spec import (
    API_VERSION,
    EarlyStoppingRule,
    ExperimentStatus,
    KatibModel,
    MetricsCollectorSpec,
    ObjectiveSpec,
    ObjectMeta,
    Observation,
    ParameterAssignment,
    Trial,
    TrialSpec,
    TrialStatus,
)
from katib.store import ExperimentRecord, TrialRecord

from ._results import STOPPED
from .controller import (
    experiment_phase,
    metric_strategies,
    result_note,
    rfc3339,
    set_condition,
    shown_value,
)

__all__ = [
    "NO_OBSERVATION",
    "use_owner_check",
    "STOPPED_CONDITION_REASON",
    "STOPPED_REASON",
    "ExperimentObject",
    "controller_alive",
    "experiment",
    "experiment_object",
    "last_failure",
    "no_result",
    "phase",
    "reason",
    "resumable",
    "shown_phase",
    "shown_reason",
    "shown_status",
    "shown_value",
    "warm_starts",
    "strategies_of",
    "trial",
    "trial_object",
]

# What a screen says of an unfinished experiment that no controller runs.
STOPPED_REASON = "no controller runs it"
# The reason of the Running=False condition a user's stop shows (``shown_status``).
STOPPED_CONDITION_REASON = STOPPED
_UNFINISHED = ("Created", "Running", "Restarting")
NO_OBSERVATION = ("Failed", "Killed")  # trial states whose object has no status.observation, as in Katib


class ExperimentObject(KatibModel):
    """A Katib ``Experiment`` as served: its document as admitted (``spec`` as stored,
    the YAML's own form) and its typed status."""

    api_version: str = API_VERSION
    kind: str = "Experiment"
    metadata: ObjectMeta
    spec: dict[str, Any] | None = None
    status: ExperimentStatus


def experiment(rec: ExperimentRecord) -> ExperimentObject:
    """The experiment as ``kubectl get experiment -o yaml`` shows it."""
    metadata = {**(rec.spec.get("metadata") or {}), "name": rec.name, "namespace": rec.namespace,
                "uid": rec.uid, "creationTimestamp": rfc3339(rec.created_at)}
    return ExperimentObject(api_version=rec.spec.get("apiVersion") or API_VERSION,
                            metadata=ObjectMeta.model_validate(metadata), spec=rec.spec.get("spec"),
                            status=shown_status(rec))


def shown_status(rec: ExperimentRecord) -> ExperimentStatus:
    """The stored status, but a stop shown: an unfinished experiment a user stopped has its
    ``Running`` condition ``False``, reason ``ExperimentStopped`` (Katib has no stop; it
    keeps Katib's condition types), and so has a running one that no controller runs any
    more (its ``katib run`` ended on an error or was killed). Its stored ``Running=True``
    told the Katib SDK's ``is_experiment_running`` and kubectl that it ran while nothing
    did. Resuming it clears the stop, and the controller's status shows again."""
    status = rec.status
    current = phase(rec)
    if current not in _UNFINISHED or _external(rec):
        return status  # an outside loop (ask and tell) runs on whatever a stop said, as shown_phase has it
    if rec.stopped_at is not None:
        message, when = ("Experiment was stopped by a user; resuming it (katib resume, or POST .../resume) runs it "
                         "again"), rec.stopped_at
    elif current == "Running" and not controller_alive(rec):  # its stored Running=True says otherwise
        message, when = ("No controller runs the experiment (the katib run, resume or server that ran it has ended); "
                         "resuming it (katib resume) runs it again"), rec.updated_at
    else:
        return status
    status = status.model_copy(deep=True)
    set_condition(status.conditions, "Running", "False", STOPPED_CONDITION_REASON, message, now=when)
    return status


def experiment_object(rec: ExperimentRecord) -> dict[str, Any]:
    """``experiment(rec)`` as Katib's JSON."""
    return experiment(rec).to_dict()


def trial(exp: ExperimentRecord, t: TrialRecord) -> Trial:
    """The trial as ``kubectl get trial -o yaml`` shows it."""
    spec = exp.spec.get("spec") or {}
    tt = spec.get("trialTemplate") or {}
    objective, collector = _parsed(exp)
    status = TrialStatus(
        conditions=t.conditions, start_time=rfc3339(t.start_time) if t.start_time else None,
        completion_time=rfc3339(t.completion_time) if t.completion_time else None,
        last_reconcile_time=rfc3339(t.updated_at) if t.updated_at else None,
        # Katib fills a trial's observation when its job succeeds or it is stopped early: a
        # failed or killed trial's reports are its metric logs, not a result.
        observation=Observation.of(t.observation) if t.observation and t.state not in NO_OBSERVATION else None,
        devices=(t.handle or {}).get("devices") or None,  # extension: what the trial ran on
    )
    trial_spec = TrialSpec(
        objective=objective,
        parameter_assignments=[ParameterAssignment.model_validate(a) for a in t.assignments],
        metrics_collector=collector,
        primary_container_name=tt.get("primaryContainerName"),
        success_condition=tt.get("successCondition"), failure_condition=tt.get("failureCondition"),
        retain_run=tt.get("retain", False), labels=t.labels,
        primary_pod_labels=tt.get("primaryPodLabels") or None,
        early_stopping_rules=[EarlyStoppingRule.model_validate(r) for r in t.early_stopping_rules or []] or None,
        run_spec=_run_spec(exp, t),
    )
    metadata = ObjectMeta.model_validate({
        "name": t.name, "namespace": exp.namespace, "labels": t.labels, "creationTimestamp": rfc3339(t.created_at),
        "annotations": {"katib.kubeflow.org/attempt": str(t.attempt)} if t.attempt else None,
        "ownerReferences": [{"apiVersion": API_VERSION, "kind": "Experiment", "name": exp.name, "uid": exp.uid,
                             "controller": True}],
    })
    return Trial(metadata=metadata, spec=trial_spec, status=status)


def trial_object(exp: ExperimentRecord, t: TrialRecord) -> dict[str, Any]:
    """``trial(exp, t)`` as Katib's JSON."""
    return trial(exp, t).to_dict()


_PARSED: dict[tuple[str, float], tuple[ObjectiveSpec | None, MetricsCollectorSpec | None]] = {}


def _parsed(exp: ExperimentRecord) -> tuple[ObjectiveSpec | None, MetricsCollectorSpec | None]:
    """The experiment's objective and metrics collector, parsed once per version of it
    (every trial of a page shows them)."""
    key = (exp.uid, exp.updated_at)
    found = _PARSED.get(key)
    if found is None:
        spec = exp.spec.get("spec") or {}
        objective, collector = spec.get("objective"), spec.get("metricsCollectorSpec")
        found = (ObjectiveSpec.model_validate(objective) if objective is not None else None,
                 MetricsCollectorSpec.model_validate(collector) if collector is not None else None)
        if len(_PARSED) > 64:
            _PARSED.clear()
        _PARSED[key] = found
    return found


_TEMPLATES: dict[tuple[str, float], Any] = {}


def _run_spec(exp: ExperimentRecord, t: TrialRecord) -> dict[str, Any] | None:
    """Katib's ``Trial.spec.runSpec``: the trial template rendered with the trial's
    assignments and its name, namespace and labels (what the executor ran); None when the
    template cannot be rendered (an ask-and-tell experiment's, say)."""
    from katib.errors import KatibError
    from katib.spec import TRIAL_LABEL, TrialMeta, TrialTemplate, render

    key = (exp.uid, exp.updated_at)
    template = _TEMPLATES.get(key)
    if template is None:
        raw = (exp.spec.get("spec") or {}).get("trialTemplate")
        try:
            template = TrialTemplate.model_validate(raw) if raw else False
        except ValueError:
            template = False
        if len(_TEMPLATES) > 64:
            _TEMPLATES.clear()
        _TEMPLATES[key] = template
    if not isinstance(template, TrialTemplate) or template.trial_spec is None:
        return None
    labels = {**t.labels, TRIAL_LABEL: t.name}
    try:
        run = render(template, t.parameters(), TrialMeta(name=t.name, namespace=exp.namespace, labels=labels))
    except (KatibError, ValueError, KeyError):
        return None
    metadata = run.setdefault("metadata", {})
    metadata.update(name=t.name, namespace=exp.namespace)
    metadata["labels"] = {**(metadata.get("labels") or {}), **labels}
    return run


def strategies_of(rec: ExperimentRecord) -> dict[str, str]:
    """Each metric's strategy (Katib's ``metricStrategies`` and its defaults): with
    ``shown_value``, the one value of a trial's metric that every screen shows."""
    return metric_strategies(rec.spec.get("spec", {}).get("objective") or {})


def phase(rec: ExperimentRecord) -> str:
    return experiment_phase(rec.status.conditions)


def reason(rec: ExperimentRecord) -> str:
    for cond in reversed(rec.status.conditions):
        if cond.status == "True":
            return cond.reason or ""
    return ""


def no_result(rec: ExperimentRecord, trials: list[TrialRecord]) -> str | None:
    """For an ended experiment that has no best trial (every trial it ran crashed or never
    reported the objective metric; ``spec.warmStart`` results are none of its own): what to
    tell the user. ``None`` otherwise."""
    if phase(rec) not in ("Succeeded", "Failed"):
        return None
    if rec.status.current_optimal_trial is not None and rec.status.current_optimal_trial.best_trial_name:
        return None
    objective = rec.spec.get("spec", {}).get("objective", {}) or {}
    return result_note(objective.get("objectiveMetricName", ""), trials, objective.get("constraints"))


def warm_starts(rec: ExperimentRecord) -> int:
    """How many of the experiment's trials are ``spec.warmStart`` results (Succeeded trials
    from its start, which use none of its budget): a count of trials it ran leaves them out."""
    return len(((rec.spec.get("spec") or {}).get("warmStart") or {}).get("trials") or [])


# How a server that shares its database with others (leases, PostgreSQL) tells whether an
# owner lives: by its replica's heartbeat, where its process may be in another PID namespace
# under the same host name. None: by its process (``trials.owner_alive``).
_owner_check: Callable[[str], bool] | None = None
_owner_seen: dict[str, tuple[float, bool]] = {}  # owner -> (when asked, answer): a list asks once a second


def use_owner_check(check: Callable[[str], bool] | None) -> None:
    """Judge owners by ``check`` from now on in this process (None: by their process)."""
    global _owner_check
    _owner_check = check
    _owner_seen.clear()


def controller_alive(rec: ExperimentRecord) -> bool:
    """Whether a live controller holds the experiment now: a ``katib run`` or ``resume``, a
    ``katib server`` or an embedded ``KatibClient`` (its owner process still runs, or its
    replica's lease is fresh)."""
    if not rec.owner:
        return False
    if _owner_check is None:
        from trials import owner_alive

        return owner_alive(rec.owner)
    now = time.monotonic()
    seen = _owner_seen.get(rec.owner)
    if seen is None or now - seen[0] > 1.0:
        if len(_owner_seen) > 1024:
            _owner_seen.clear()
        seen = _owner_seen[rec.owner] = (now, _owner_check(rec.owner))
    return seen[1]


def _external(rec: ExperimentRecord) -> bool:
    return (rec.spec.get("spec") or {}).get("executor") == "external"


def shown_phase(rec: ExperimentRecord, active: bool | None = None) -> str:
    """The phase every screen shows: Katib's, except ``Stopped`` for an unfinished
    experiment that no controller runs (an interrupted ``katib run``, a stopped server); an
    outside loop (ask and tell) needs none. ``active``: whether a controller runs it, when
    the caller knows better (a server knows its own threads)."""
    current = phase(rec)
    if current in _UNFINISHED and not _external(rec):
        if not (controller_alive(rec) if active is None else active):
            return "Stopped"
    return current


def shown_reason(rec: ExperimentRecord, shown: str) -> str:
    """The reason beside ``shown_phase``: Katib's, or why it is ``Stopped``."""
    return STOPPED_REASON if shown == "Stopped" else reason(rec)


def resumable(rec: ExperimentRecord, active: bool | None = None) -> bool:
    """Whether resuming can work: unfinished, driven by a controller and none runs it."""
    return shown_phase(rec, active) == "Stopped"


def last_failure(trials: list[TrialRecord]) -> dict[str, str] | None:
    """The trial that failed last (Failed or MetricsUnavailable) with its reason and
    message: the cause a screen shows beside a failed experiment. None when none failed."""
    failed = [t for t in trials if t.state in ("Failed", "MetricsUnavailable")]
    if not failed:
        return None
    t = max(failed, key=lambda t: (t.completion_time or 0.0, t.id))
    cond = next((c for c in reversed(t.conditions) if c.type == t.state), None)
    return {"trial": t.name, "state": t.state, "reason": (cond.reason if cond else None) or "",
            "message": (cond.message if cond else None) or ""}
