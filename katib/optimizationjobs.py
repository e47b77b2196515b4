"""An experiment written from a Kubeflow Trainer ``OptimizationJob`` shown as one: its spec as
the user wrote it, and the status upstream defines (``conditions``, ``result{trainJobName,
parameters}``) with the trial-history proposal's ``trials[]`` (state Running, Succeeded,
Failed or EarlyStopped; reason TrainJobFailed, TrainJobDeleted or MetricsUnavailable) and
``nextTrialIndex``; plus ``metrics`` per trial, which upstream keeps on the TrainJob."""

from __future__ import annotations

import json
from typing import Any

from .controller import rfc3339
from .spec import (
    OPTIMIZATION_JOB_SOURCE as SOURCE_ANNOTATION,  # where katib.spec keeps the original
)
from .store import ExperimentRecord, TrialRecord

_STATES = {"Created": ("Running", None), "Running": ("Running", None), "Succeeded": ("Succeeded", None),
           "EarlyStopped": ("EarlyStopped", None), "Failed": ("Failed", "TrainJobFailed"),
           "Killed": ("Failed", "TrainJobDeleted"), "MetricsUnavailable": ("Failed", "MetricsUnavailable")}


def source_of(rec: ExperimentRecord) -> dict[str, Any] | None:
    """The OptimizationJob ``rec`` was written from, or None."""
    text = ((rec.spec.get("metadata") or {}).get("annotations") or {}).get(SOURCE_ANNOTATION)
    if not text:
        return None
    try:
        doc = json.loads(text)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


def _conditions(rec: ExperimentRecord) -> list[dict[str, Any]]:
    out = []
    for c in rec.status.conditions:
        kind = {"Succeeded": "Complete"}.get(c.type, c.type)
        out.append({"type": kind, "status": c.status, "reason": c.reason or kind,
                    "message": c.message or "", "lastTransitionTime": c.last_transition_time})
    return out


def _trial(t: TrialRecord) -> dict[str, Any]:
    state, reason = _STATES.get(t.state, ("Running", None))
    out: dict[str, Any] = {"name": t.name, "trainJobName": t.name, "state": state,
                           "parameters": [{"name": a["name"], "value": a["value"]} for a in t.assignments]}
    if reason:
        out["reason"] = reason
    if t.observation:
        out["metrics"] = [{"name": n, **v} for n, v in sorted(t.observation.items())]
    if t.start_time is not None:
        out["startTime"] = rfc3339(t.start_time)
    if t.completion_time is not None:
        out["completionTime"] = rfc3339(t.completion_time)
    return out


def optimization_job_object(rec: ExperimentRecord, trials: list[TrialRecord]) -> dict[str, Any] | None:
    """``rec`` as the OptimizationJob it was written from (None when it was not)."""
    source = source_of(rec)
    if source is None:
        return None
    metadata = {k: v for k, v in (rec.spec.get("metadata") or {}).items() if k != "annotations"}
    annotations = {k: v for k, v in ((rec.spec.get("metadata") or {}).get("annotations") or {}).items() if k != SOURCE_ANNOTATION}
    metadata.update(name=rec.name, namespace=rec.namespace, uid=rec.uid, creationTimestamp=rfc3339(rec.created_at))
    if annotations:
        metadata["annotations"] = annotations
    status: dict[str, Any] = {"conditions": _conditions(rec), "trials": [_trial(t) for t in trials],
                              "nextTrialIndex": len(trials)}
    best = rec.status.current_optimal_trial
    if best is not None and best.best_trial_name:
        status["result"] = {"trainJobName": best.best_trial_name,
                            "parameters": [{"name": a.name, "value": a.value} for a in best.parameter_assignments]}
    return {"apiVersion": source.get("apiVersion"), "kind": "OptimizationJob", "metadata": metadata,
            "spec": source.get("spec") or {}, "status": status}


__all__ = ["SOURCE_ANNOTATION", "optimization_job_object", "source_of"]
