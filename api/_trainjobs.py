"""What the Kubeflow SDK (``kubeflow`` 0.5.0's ``OptimizerClient`` and ``TrainerClient``)
reads of a Trainer ``TrainJob`` trial, as Kubernetes objects: the TrainJob itself, the pods
JobSet would make of it (labels ``jobset.sigs.k8s.io/jobset-name``,
``jobset.sigs.k8s.io/replicatedjob-name: node``, ``batch.kubernetes.io/job-completion-index``;
containers ``node`` and Katib's ``metrics-logger-and-collector``), and the events Katib's
controller records for experiments and trials."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from katib import views
from katib.errors import KatibError
from katib.runtimes import TRAINER_API_VERSION, TRAINJOB_KIND, is_trainjob, resolve
from katib.spec import API_VERSION, EXPERIMENT_LABEL, TRIAL_LABEL
from katib.store import ExperimentRecord, TrialRecord

JOBSET_NAME_LABEL = "jobset.sigs.k8s.io/jobset-name"
REPLICATED_JOB_LABEL = "jobset.sigs.k8s.io/replicatedjob-name"
JOB_INDEX_LABEL = "batch.kubernetes.io/job-completion-index"
COLLECTOR_CONTAINER = "metrics-logger-and-collector"  # Katib's sidecar; the SDK reads the trial's log from it
PHASES = {"Created": "Pending", "Running": "Running", "Succeeded": "Succeeded", "EarlyStopped": "Succeeded",
          "MetricsUnavailable": "Succeeded", "Failed": "Failed", "Killed": "Failed"}


def stamp(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def run_spec(rec: ExperimentRecord, t: TrialRecord) -> dict[str, Any] | None:
    """The trial's rendered job (Katib's ``Trial.spec.runSpec``)."""
    found = views.trial_object(rec, t).get("spec", {}).get("runSpec")
    return found if isinstance(found, dict) else None


def trainjob_of(rec: ExperimentRecord, t: TrialRecord) -> dict[str, Any] | None:
    """The trial's TrainJob object, when its template is one (else None)."""
    job = run_spec(rec, t)
    if not is_trainjob(job):
        return None
    assert job is not None
    conditions = []
    if t.state in ("Succeeded", "EarlyStopped", "MetricsUnavailable"):
        conditions.append({"type": "Complete", "status": "True", "reason": "JobSetCompleted",
                           "message": "jobset completed successfully", "lastTransitionTime": stamp(t.completion_time)})
    elif t.state in ("Failed", "Killed"):
        conditions.append({"type": "Failed", "status": "True", "reason": "JobSetFailed",
                           "message": (t.conditions[-1].message if t.conditions else "") or "jobset failed",
                           "lastTransitionTime": stamp(t.completion_time)})
    return {
        "apiVersion": TRAINER_API_VERSION, "kind": TRAINJOB_KIND,
        "metadata": {"name": t.name, "namespace": rec.namespace, "creationTimestamp": stamp(t.created_at),
                     "labels": {EXPERIMENT_LABEL: rec.name, TRIAL_LABEL: t.name},
                     "ownerReferences": [{"apiVersion": API_VERSION, "kind": "Trial", "name": t.name,
                                          "uid": f"{rec.uid}-{t.name}", "controller": True}]},
        "spec": job.get("spec") or {},
        "status": {"conditions": conditions},
    }


def _nodes(rec: ExperimentRecord, job: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """The nodes and container of a stored trial's TrainJob; one node where it does not
    resolve, as when its ``numNodes`` is past ``KATIB_MAX_REPLICAS`` (``resolve`` refuses
    it: a run spec stored before counts from placeholders were checked asked for millions)."""
    try:
        resolved = resolve(job, rec.namespace)
    except KatibError:
        return 1, {"name": "node", "image": "local"}
    return resolved.num_nodes, resolved.container


def trainjob_pods(rec: ExperimentRecord, t: TrialRecord, job: dict[str, Any], base_labels: dict[str, str]) -> list[dict[str, Any]]:
    """One pod per trainer node: node 0 is named after the trial (its log is the trial's),
    node ``i`` ``<trial>-node-<i>``."""
    count, container = _nodes(rec, {"apiVersion": TRAINER_API_VERSION, "kind": TRAINJOB_KIND, "spec": job["spec"]})
    node = {k: v for k, v in container.items() if k in ("name", "image", "resources", "env")}
    node.setdefault("image", "local")
    pods = []
    for i in range(count):
        labels = {**base_labels, JOBSET_NAME_LABEL: t.name, REPLICATED_JOB_LABEL: "node", JOB_INDEX_LABEL: str(i)}
        pods.append({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": t.name if i == 0 else f"{t.name}-node-{i}", "namespace": rec.namespace,
                         "labels": labels, "creationTimestamp": stamp(t.start_time or t.created_at)},
            "spec": {"containers": [dict(node), {"name": COLLECTOR_CONTAINER, "image": "local"}]},
            "status": {"phase": PHASES.get(t.state, "Unknown")},
        })
    return pods


def _event(kind: str, name: str, namespace: str, reason: str, message: str, at: float, kind_type: str = "Normal") -> dict[str, Any]:
    when = stamp(at)
    return {"apiVersion": "v1", "kind": "Event",
            "metadata": {"name": f"{name}.{reason.lower()}", "namespace": namespace, "creationTimestamp": when},
            "involvedObject": {"apiVersion": API_VERSION, "kind": kind, "name": name, "namespace": namespace},
            "reason": reason, "message": message, "type": kind_type, "count": 1,
            "firstTimestamp": when, "lastTimestamp": when, "source": {"component": "katib"}}


# Katib's trial controller: the reasons and messages it records (EarlyStopped and Killed
# trials record no event of their own there).
_TRIAL_ENDS = {"Succeeded": ("JobSucceeded", "Normal", "Job {} has succeeded"),
               "MetricsUnavailable": ("MetricsUnavailable", "Warning", "Metrics are not available for Job {}"),
               "Failed": ("JobFailed", "Normal", "Job {} has failed")}


def events(rec: ExperimentRecord, trials: list[TrialRecord]) -> list[dict[str, Any]]:
    """The events Katib's trial controller records, from the rows: each trial's job
    created, running, and succeeded, failed or without metrics (the experiment controller
    records none but reconcile errors)."""
    ns = rec.namespace
    out = []
    for t in trials:
        out.append(_event("Trial", t.name, ns, "JobCreated", f"Job {t.name} has been created", t.created_at))
        if t.start_time is not None:
            out.append(_event("Trial", t.name, ns, "JobRunning", f"Job {t.name} is running", t.start_time))
        if t.state in _TRIAL_ENDS and t.completion_time is not None:
            reason, kind, message = _TRIAL_ENDS[t.state]
            out.append(_event("Trial", t.name, ns, reason, message.format(t.name), t.completion_time, kind))
    return out
