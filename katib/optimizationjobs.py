"""An experiment written from a Kubeflow Trainer ``OptimizationJob`` shown as one: its spec as
the user wrote it, and the status upstream defines (``conditions``, ``result{trainJobName,
parameters}``) with the trial-history proposal's ``trials[]`` (state Running, Succeeded,
Failed or EarlyStopped; reason TrainJobFailed, TrainJobDeleted or MetricsUnavailable) and
``nextTrialIndex``; plus ``metrics`` per trial, which upstream keeps on the TrainJob."""

from __future__ import annotations

import copy
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


def source_annotation(rec: ExperimentRecord) -> str | None:
    """The annotation ``rec`` keeps its OptimizationJob in (None: it was not written from one).
    Admission reserves it (``katib.spec.admit``): only our conversion writes it, and an
    edit keeps it as it is."""
    text = ((rec.spec.get("metadata") or {}).get("annotations") or {}).get(SOURCE_ANNOTATION)
    return text if isinstance(text, str) else None


def source_of(rec: ExperimentRecord) -> dict[str, Any] | None:
    """The OptimizationJob ``rec`` was written from, or None."""
    text = source_annotation(rec)
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


def _objectives(objective: dict[str, Any]) -> list[dict[str, Any]]:
    """The objectives an experiment runs, as an OptimizationJob writes them."""
    out = [{"metric": objective.get("objectiveMetricName"), "direction": str(objective.get("type") or "").capitalize()}]
    return out + [{"metric": o.get("metricName"), "direction": str(o.get("type") or "").capitalize()}
                  for o in objective.get("additionalObjectives") or [] if isinstance(o, dict)]


def _same_objectives(written: Any, running: list[dict[str, Any]]) -> bool:
    if not isinstance(written, list) or len(written) != len(running):
        return False
    return all(isinstance(w, dict) and w.get("metric") == r["metric"]
               and str(w.get("direction", "Minimize")).lower() == r["direction"].lower() for w, r in zip(written, running, strict=True))


def _spec(source: dict[str, Any], rec: ExperimentRecord) -> dict[str, Any]:
    """The OptimizationJob's spec as written, but where the experiment runs otherwise: the
    budget after an edit (``numTrials``, ``parallelTrials`` from ``maxTrialCount``,
    ``parallelTrialCount``; a budget without a bound shows none) and the objectives, so the
    view never shows what does not run."""
    written = source.get("spec")
    spec: dict[str, Any] = copy.deepcopy(written) if isinstance(written, dict) else {}
    running = rec.spec.get("spec") or {}
    for ours, katib in (("numTrials", "maxTrialCount"), ("parallelTrials", "parallelTrialCount")):
        value = running.get(katib)
        if value is None:
            spec.pop(ours, None)
        elif value != spec.get(ours, 1):
            spec[ours] = value
    objectives = _objectives(running.get("objective") or {})
    if not _same_objectives(spec.get("objectives"), objectives):
        spec["objectives"] = objectives
    return spec


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
            "spec": _spec(source, rec), "status": status}


__all__ = ["SOURCE_ANNOTATION", "optimization_job_object", "source_annotation", "source_of"]
