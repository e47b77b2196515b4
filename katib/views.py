"""Katib-shaped objects built from store records: what the CLI prints and the API serves.

One set of status objects for every surface: ``experiment_object`` and ``trial_object``
return exactly what ``kubectl get experiment -o yaml`` / ``get trial`` would show.
"""

from __future__ import annotations

from typing import Any

from katib.spec import API_VERSION
from katib.store import ExperimentRecord, TrialRecord

from .controller import (
    experiment_phase,
    metric_strategies,
    no_result_note,
    rfc3339,
    shown_value,
)

__all__ = [
    "STOPPED_REASON",
    "controller_alive",
    "experiment_object",
    "last_failure",
    "no_result",
    "phase",
    "reason",
    "resumable",
    "shown_phase",
    "shown_reason",
    "shown_value",
    "strategies_of",
    "trial_object",
]

# What a screen says of an unfinished experiment that no controller runs.
STOPPED_REASON = "no controller runs it"
_UNFINISHED = ("Created", "Running", "Restarting")


def experiment_object(rec: ExperimentRecord) -> dict[str, Any]:
    obj = dict(rec.spec)
    metadata = dict(obj.get("metadata") or {})
    metadata.update(name=rec.name, namespace=rec.namespace, uid=rec.uid,
                    creationTimestamp=rfc3339(rec.created_at))
    obj["apiVersion"] = obj.get("apiVersion") or API_VERSION
    obj["kind"] = "Experiment"
    obj["metadata"] = metadata
    obj["status"] = rec.status
    return obj


def trial_object(exp: ExperimentRecord, t: TrialRecord) -> dict[str, Any]:
    spec = exp.spec.get("spec", {})
    tt = spec.get("trialTemplate", {})
    status: dict[str, Any] = {"conditions": t.conditions}
    if t.start_time:
        status["startTime"] = rfc3339(t.start_time)
    if t.completion_time:
        status["completionTime"] = rfc3339(t.completion_time)
    if t.updated_at:
        status["lastReconcileTime"] = rfc3339(t.updated_at)
    if t.observation:
        status["observation"] = {"metrics": [{"name": k, **v} for k, v in t.observation.items()]}
    if t.handle and t.handle.get("devices"):
        status["devices"] = t.handle["devices"]  # extension: what the trial ran on
    trial_spec: dict[str, Any] = {
        "objective": spec.get("objective"),
        "parameterAssignments": t.assignments,
        "metricsCollector": spec.get("metricsCollectorSpec"),
        "primaryContainerName": tt.get("primaryContainerName"),
        "successCondition": tt.get("successCondition"),
        "failureCondition": tt.get("failureCondition"),
        "retainRun": tt.get("retain", False),
        "labels": t.labels,
    }
    if tt.get("primaryPodLabels"):
        trial_spec["primaryPodLabels"] = tt["primaryPodLabels"]
    if t.early_stopping_rules:
        trial_spec["earlyStoppingRules"] = t.early_stopping_rules
    run_spec = _run_spec(exp, t)
    if run_spec is not None:
        trial_spec["runSpec"] = run_spec
    annotations = {"katib.kubeflow.org/attempt": str(t.attempt)} if t.attempt else None
    metadata: dict[str, Any] = {
        "name": t.name, "namespace": exp.namespace, "labels": t.labels,
        "creationTimestamp": rfc3339(t.created_at),
        "ownerReferences": [{"apiVersion": API_VERSION, "kind": "Experiment", "name": exp.name, "uid": exp.uid, "controller": True}],
    }
    if annotations:
        metadata["annotations"] = annotations
    return {"apiVersion": API_VERSION, "kind": "Trial", "metadata": metadata,
            "spec": {k: v for k, v in trial_spec.items() if v is not None}, "status": status}


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
    return experiment_phase(rec.status.get("conditions", []))


def reason(rec: ExperimentRecord) -> str:
    for cond in reversed(rec.status.get("conditions", [])):
        if cond.get("status") == "True":
            return cond.get("reason", "")
    return ""


def no_result(rec: ExperimentRecord, trials: list[TrialRecord]) -> str | None:
    """For an ended experiment that has no best trial (every trial crashed or never
    reported the objective metric): what to tell the user. ``None`` otherwise."""
    if phase(rec) not in ("Succeeded", "Failed"):
        return None
    if (rec.status.get("currentOptimalTrial") or {}).get("bestTrialName"):
        return None
    objective = rec.spec.get("spec", {}).get("objective", {}).get("objectiveMetricName", "")
    return no_result_note(objective, trials)


def controller_alive(rec: ExperimentRecord) -> bool:
    """Whether a live controller holds the experiment now: a ``katib run`` or ``resume``, a
    ``katib server`` or an embedded ``KatibClient`` (its owner process still runs)."""
    if not rec.owner:
        return False
    from trials import owner_alive

    return owner_alive(rec.owner)


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
    cond: dict[str, Any] = next((c for c in reversed(t.conditions) if c.get("type") == t.state), {})
    return {"trial": t.name, "state": t.state, "reason": cond.get("reason") or "", "message": cond.get("message") or ""}
