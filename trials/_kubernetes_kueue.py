"""Trials queued by Kueue (kueue.sigs.k8s.io): what the Kubernetes executor puts on a
trial's job and what it reads back while the job waits for admission.

- **The queue**: the job's ``kueue.x-k8s.io/queue-name`` label, a LocalQueue of the trial's
  namespace: the trial template's own label, else the executor's (``katib run|server
  --kueue-queue``). **Priority**: the ``kueue.x-k8s.io/priority-class`` label (a
  WorkloadPriorityClass), the template's own else ``--kueue-priority-class``; a pod
  template's ``priorityClassName`` passes through as written (Kueue takes the workload's
  priority from it when the label is absent).
- **Created suspended**, as Kueue's webhook would make it, at the field the job's kind has
  for it: ``spec.suspend`` (batch/v1 Job, JobSet, TrainJob, RayJob, RayCluster, AppWrapper)
  or ``spec.runPolicy.suspend`` (Kubeflow's PyTorchJob, TFJob, XGBoostJob, PaddleJob,
  JAXJob, MPIJob). Kueue un-suspends it when its Workload is admitted, and suspends it again
  when it evicts it (preemption).
- **Admission**: a queued job still suspended is waiting, never failed: its trial runs on
  (Running, with the reason ``WaitingForAdmission`` and a message naming the queue and
  what Kueue said, from the Workload's ``QuotaReserved``/``Evicted`` conditions when the
  executor may read Workloads), and ``activeDeadlineSeconds`` counts from admission, as
  the Job controller counts it (it restarts the clock on each resume).
"""

from __future__ import annotations

import re
from typing import Any

from ._executor import LaunchError

QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
PRIORITY_LABEL = "kueue.x-k8s.io/priority-class"
WORKLOADS = ("kueue.x-k8s.io", "v1beta1", "workloads")

_KUBEFLOW = ("PyTorchJob", "TFJob", "XGBoostJob", "PaddleJob", "JAXJob", "MPIJob")
# (API group, kind) → the path of its suspend field, as Kueue's integrations set it.
SUSPEND_PATHS: dict[tuple[str, str], tuple[str, ...]] = {
    ("batch", "Job"): ("spec", "suspend"),
    ("jobset.x-k8s.io", "JobSet"): ("spec", "suspend"),
    ("trainer.kubeflow.org", "TrainJob"): ("spec", "suspend"),
    ("ray.io", "RayJob"): ("spec", "suspend"),
    ("ray.io", "RayCluster"): ("spec", "suspend"),
    ("workload.codeflare.dev", "AppWrapper"): ("spec", "suspend"),
    **{("kubeflow.org", kind): ("spec", "runPolicy", "suspend") for kind in _KUBEFLOW},
}
# A label value (Kubernetes' validation.IsValidLabelValue): 63 characters at most,
# alphanumerics, '-', '_' and '.', beginning and ending with an alphanumeric.
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")


def label_value_problem(value: str) -> str | None:
    """Why ``value`` cannot be a label's value (None when it can)."""
    if len(value) > 63:
        return f"{value!r} is longer than a label value may be (63 characters)"
    if not value or not _LABEL_VALUE.fullmatch(value):
        return (f"{value!r} is not a valid label value (alphanumerics, '-', '_' and '.', beginning and "
                "ending with an alphanumeric)")
    return None


def _kind_key(obj: dict[str, Any]) -> tuple[str, str]:
    group = str(obj.get("apiVersion", "")).rpartition("/")[0]
    return group, str(obj.get("kind", ""))


def queue_of(obj: dict[str, Any]) -> str | None:
    """The Kueue queue a job object is labelled for, if any."""
    labels = (obj.get("metadata") or {}).get("labels") or {}
    value = labels.get(QUEUE_LABEL)
    return str(value) if value else None


def enqueue(manifest: dict[str, Any], queue: str | None, priority_class: str | None) -> str | None:
    """Label ``manifest`` for Kueue and create it suspended (in place); returns the queue
    (the template's own label wins over ``queue``), or None when it is not queued.
    ``LaunchError`` names a bad label or a kind Kueue does not queue."""
    meta = manifest.setdefault("metadata", {})
    labels = meta.setdefault("labels", {})
    if not labels.get(QUEUE_LABEL) and queue:
        labels[QUEUE_LABEL] = queue
    if not labels.get(QUEUE_LABEL):
        if labels.get(PRIORITY_LABEL):
            raise LaunchError(f"metadata.labels[{PRIORITY_LABEL}]: a Kueue priority class needs a queue "
                              f"({QUEUE_LABEL}, or katib's --kueue-queue)")
        return None  # not queued: a default priority class has nothing to rank
    if not labels.get(PRIORITY_LABEL) and priority_class:
        labels[PRIORITY_LABEL] = priority_class
    for key in (QUEUE_LABEL, PRIORITY_LABEL):
        problem = label_value_problem(str(labels[key])) if labels.get(key) else None
        if problem:
            raise LaunchError(f"metadata.labels[{key}]: {problem}")
    path = SUSPEND_PATHS.get(_kind_key(manifest))
    if path is None:
        kinds = ", ".join(sorted({k for _, k in SUSPEND_PATHS}))
        raise LaunchError(f"metadata.labels[{QUEUE_LABEL}]: Kueue does not queue a {manifest.get('apiVersion')} "
                          f"{manifest.get('kind')} (katib queues: {kinds})")
    suspend(manifest, path)
    return str(labels[QUEUE_LABEL])


def suspend(obj: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    """``obj`` with its suspend field (``path``, from ``SUSPEND_PATHS``) set true, in place."""
    node = obj
    for key in path[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = node[key] = {}
        node = child
    node[path[-1]] = True
    return obj


def suspended(obj: dict[str, Any]) -> bool:
    """Whether a job object is suspended (waiting for Kueue's admission, or evicted)."""
    node: Any = obj
    for key in SUSPEND_PATHS.get(_kind_key(obj), ("spec", "suspend")):
        node = node.get(key) if isinstance(node, dict) else None
    return node is True


def owner_of(workload: dict[str, Any]) -> tuple[str, str] | None:
    """The (kind, name) of the job a Workload was made for."""
    for ref in (workload.get("metadata") or {}).get("ownerReferences") or []:
        if isinstance(ref, dict) and ref.get("controller", True) and ref.get("name"):
            return str(ref.get("kind", "")), str(ref["name"])
    return None


def _condition(obj: dict[str, Any] | None, type_: str) -> dict[str, Any] | None:
    for cond in ((obj or {}).get("status") or {}).get("conditions") or []:
        if isinstance(cond, dict) and cond.get("type") == type_:
            return cond
    return None


def waiting_message(queue: str, kind: str, workload: dict[str, Any] | None) -> str:
    """What a queued, suspended trial says: its queue and what Kueue said of its Workload."""
    evicted = _condition(workload, "Evicted")
    if evicted and evicted.get("status") == "True":
        why = ": ".join(x for x in (evicted.get("reason"), evicted.get("message")) if x)
        return f"evicted by Kueue ({why}); waiting in Kueue queue {queue!r} to be admitted again"
    head = f"waiting in Kueue queue {queue!r} for admission (its {kind} is suspended)"
    reserved = _condition(workload, "QuotaReserved")
    if reserved and reserved.get("status") == "False" and reserved.get("message"):
        return f"{head}: {reserved['message']}"
    admitted = _condition(workload, "Admitted")
    if admitted and admitted.get("status") == "False" and admitted.get("message"):
        return f"{head}: {admitted['message']}"
    return head
