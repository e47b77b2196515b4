"""An experiment written from a Kubeflow Trainer ``OptimizationJob`` shown as one: its spec as
the user wrote it, and the status upstream defines (``conditions``, ``result{trainJobName,
parameters}``) with the trial-history proposal's ``trials[]`` (state Running, Succeeded,
Failed or EarlyStopped; reason TrainJobFailed, TrainJobDeleted or MetricsUnavailable) and
``nextTrialIndex``; plus ``metrics`` per trial, which upstream keeps on the TrainJob."""

from __future__ import annotations

import copy
from typing import Any

from .controller import rfc3339
from .errors import KatibError, NotFoundError
from .spec import (
    OPTIMIZATION_JOB_SOURCE as SOURCE_ANNOTATION,  # where katib.spec keeps the original
)
from .spec import (
    apply_defaults,
    optimization_job_of,
    optimization_job_source_text,
    parse_experiment,
)
from .store import ExperimentRecord, Store, TrialRecord
from .views import shown_status

_STATES = {"Created": ("Running", None), "Running": ("Running", None), "Succeeded": ("Succeeded", None),
           "EarlyStopped": ("EarlyStopped", None), "Failed": ("Failed", "TrainJobFailed"),
           "Killed": ("Failed", "TrainJobDeleted"), "MetricsUnavailable": ("Failed", "MetricsUnavailable")}
_TRAINJOB = ("TrainJob", "trainer.kubeflow.org/")


def source_annotation(rec: ExperimentRecord | None) -> str | None:
    """The annotation ``rec`` keeps its OptimizationJob in (None: it was not written from one,
    or there is no ``rec``). Admission reserves it (``katib.spec.admit``): only our
    conversion writes it, and an edit or a submission again keeps it as it is."""
    return optimization_job_source_text(rec.spec) if rec is not None else None


def source_of(rec: ExperimentRecord) -> dict[str, Any] | None:
    """The OptimizationJob ``rec`` was written from, or None."""
    return optimization_job_of(rec.spec)


def stored_experiment(store: Store, doc: Any, namespace: str | None = None) -> ExperimentRecord | None:
    """The stored experiment of the name ``doc`` gives (``metadata.name``, in ``namespace``,
    else in the document's own ``metadata.namespace``, else in ``default``), or None: there
    is none, or ``doc`` names none. What a document submitted again (``katib run`` of the
    same file, ``apply_experiment``, a create that answers 409) is checked against, before
    admission: its ``kept_source`` is ``source_annotation`` of this record."""
    meta = doc.get("metadata") if isinstance(doc, dict) else None
    name = meta.get("name") if isinstance(meta, dict) else None
    namespace = namespace or (meta.get("namespace") if isinstance(meta, dict) else None) or "default"
    if not isinstance(name, str) or not name or not isinstance(namespace, str):
        return None
    try:
        return store.get_experiment(namespace, name)
    except NotFoundError:
        return None


def _conditions(rec: ExperimentRecord) -> list[dict[str, Any]]:
    """The experiment's conditions as an OptimizationJob's: Succeeded is Complete, unless the
    run ended with no result (no trial reported the objective: every one failed, say), which
    is Failed (``NoTrialSucceeded``, its message why). Katib calls such an experiment
    Succeeded, and so does the Experiment here. The Kubeflow SDK (0.5) reads the Experiment,
    as it does on a cluster; this object is what kubectl and any client of the
    OptimizationJob API read. A user's stop shows as ``Running=False`` (``ExperimentStopped``)."""
    status = shown_status(rec)
    best = status.current_optimal_trial
    no_result = not (best is not None and best.best_trial_name) and not status.pareto_front
    out = []
    for c in status.conditions:
        kind, reason, message = {"Succeeded": "Complete"}.get(c.type, c.type), c.reason, c.message or ""
        if kind == "Complete" and c.status == "True" and no_result:
            kind, reason = "Failed", "NoTrialSucceeded"
            # Katib's "Experiment has succeeded because …" names the end; what follows is why there is no result.
            message = "No result: " + (message.split("; ", 1)[1] if "; " in message else message)
        out.append({"type": kind, "status": c.status, "reason": reason or kind,
                    "message": message, "lastTransitionTime": c.last_transition_time})
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


def _as_run(source: dict[str, Any]) -> dict[str, Any] | None:
    """The defaulted Experiment spec the written OptimizationJob converts to (as admission
    stores it), or None when it does not convert (an annotation planted before admission
    reserved it may hold anything)."""
    try:
        return apply_defaults(parse_experiment(source)).to_dict().get("spec")
    except (KatibError, AttributeError, KeyError, TypeError, ValueError, RecursionError):
        return None


def _search_space(prm: dict[str, Any]) -> dict[str, Any]:
    """A Katib parameter's space as an OptimizationJob writes it; one with no such form
    (a step, a normal or logNormal distribution) as Katib's, under ``katib``."""
    found = prm.get("feasibleSpace")
    space: dict[str, Any] = found if isinstance(found, dict) else {}
    kind = prm.get("parameterType")
    if kind in ("categorical", "discrete") and isinstance(space.get("list"), list):
        return {"categorical": {"choices": [str(c) for c in space["list"]]}}
    distribution = space.get("distribution") or "uniform"
    if (kind in ("double", "int") and distribution in ("uniform", "logUniform") and not space.get("step")
            and space.get("min") is not None and space.get("max") is not None):
        return {distribution: {"min": str(space["min"]), "max": str(space["max"]), "type": "Int" if kind == "int" else "Float"}}
    return {"katib": {"parameterType": kind, "feasibleSpace": copy.deepcopy(space)}}


def _search_algorithm(algorithm: dict[str, Any]) -> dict[str, Any]:
    """Katib's algorithm as an OptimizationJob writes it: ``random`` (a ``random_state``
    as its ``seed``) and ``grid`` as upstream's, any other as ``katib``."""
    name, settings = algorithm.get("algorithmName"), algorithm.get("algorithmSettings") or []
    if name == "grid" and not settings:
        return {"grid": {}}
    if name == "random" and not settings:
        return {"random": {}}
    if name == "random" and len(settings) == 1 and isinstance(settings[0], dict) and settings[0].get("name") == "random_state":
        seed = str(settings[0].get("value"))
        if seed.lstrip("-").isdigit():
            return {"random": {"seed": int(seed)}}
    return {"katib": copy.deepcopy(algorithm)}


def _train_job_template(job: Any) -> dict[str, Any] | None:
    """The trial's job as a ``trainJobTemplate``: a TrainJob's metadata and spec; any other
    job whole, its ``apiVersion`` and ``kind`` saying what it is."""
    if not isinstance(job, dict):
        return None
    if job.get("kind") == _TRAINJOB[0] and str(job.get("apiVersion", "")).startswith(_TRAINJOB[1]):
        return {"metadata": copy.deepcopy(job.get("metadata") or {}), "spec": copy.deepcopy(job.get("spec"))}
    return copy.deepcopy(job)


def _spec(source: dict[str, Any], rec: ExperimentRecord) -> dict[str, Any]:
    """The OptimizationJob's spec as written, but where the experiment runs otherwise: the
    budget after an edit (``numTrials``, ``parallelTrials`` from ``maxTrialCount``,
    ``parallelTrialCount``; a budget without a bound shows none), the objectives, and the
    parameters, search algorithm, trial job and early stopping (each kept as written while
    the written job converts to what the experiment runs; otherwise read from the
    experiment: only an annotation planted before admission reserved it, or written by a
    conversion since changed, differs), so the view never shows what does not run."""
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
    run = _as_run(source) or {}
    if run.get("parameters") != running.get("parameters"):
        spec["parameters"] = [{"name": p.get("name"), "searchSpace": _search_space(p)}
                              for p in running.get("parameters") or [] if isinstance(p, dict)]
    if run.get("algorithm") != running.get("algorithm"):
        spec["searchAlgorithm"] = _search_algorithm(running.get("algorithm") or {})
    job = (running.get("trialTemplate") or {}).get("trialSpec")
    if (run.get("trialTemplate") or {}).get("trialSpec") != job:
        template = _train_job_template(job)
        if template is None:
            spec.pop("trainJobTemplate", None)
        else:
            spec["trainJobTemplate"] = template
    if run.get("earlyStopping") != running.get("earlyStopping"):
        if running.get("earlyStopping") is None:
            spec.pop("earlyStopping", None)
        else:
            spec["earlyStopping"] = copy.deepcopy(running["earlyStopping"])
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


__all__ = ["SOURCE_ANNOTATION", "optimization_job_object", "source_annotation", "source_of", "stored_experiment"]
