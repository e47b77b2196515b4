"""How a trial's job stands, judged from what the watches saw of it: the template's
``successCondition`` / ``failureCondition`` (GJSON) over the latest job object, a job
deleted outside katib, ``activeDeadlineSeconds`` (counted from admission when Kueue queues
the job); a failure names what the pods saw (``OOMKilled``, an eviction, an exit code).
While it waits, ``waiting`` says for what: Kueue's admission, a GPU, a node."""

from __future__ import annotations

import time
from typing import Any

from katib.spec import condition_found as found
from katib.spec import condition_holds as holds
from katib.spec import condition_unreadable

from ._executor import RunState
from ._kubernetes_kueue import suspended, waiting_message
from ._kubernetes_watch import KubeTrial, primary_pod

DEADLINE_GRACE = 5.0  # seconds past activeDeadlineSeconds before katib stops the job itself


def judge(trial: KubeTrial) -> RunState | None:
    """The trial's outcome, or None while it runs."""
    if trial.stopped:
        return RunState(True, reason="Killed", message="the trial was stopped; its job was deleted")
    obj = trial.obj or {}
    if trial.failure and holds(obj, trial.failure):
        job_reason = str((found(obj, trial.failure) or {}).get("reason") or "")  # Katib's GetDeployedJobStatus
        return RunState(True, reason="Failed", exit_code=exit_code(trial), message=failure_message(trial, obj),
                        job_reason=job_reason)
    if trial.success and holds(obj, trial.success):
        return RunState(True, succeeded=True, reason="Completed", exit_code=0)
    if trial.gone:  # the executor creates it again (``KubernetesExecutor._create_again``)
        return RunState(True, reason="Lost", message=f"the {obj.get('kind', 'job')} was deleted outside katib")
    since = trial.running_since  # None while it waits in Kueue's queue: the deadline does not run
    if trial.deadline is not None and since is not None and time.time() - since > trial.deadline + DEADLINE_GRACE:
        return RunState(True, reason="DeadlineExceeded",
                        message=f"the trial ran past activeDeadlineSeconds ({trial.deadline:g}s); its job was deleted")
    return None


def exit_code(trial: KubeTrial) -> int | None:
    pod = primary_pod(trial)
    for status in ((pod or {}).get("status") or {}).get("containerStatuses") or []:
        terminated = (status.get("state") or {}).get("terminated") or {}
        if status.get("name") == trial.job.primary_container and "exitCode" in terminated:
            return int(terminated["exitCode"])
    return None


def failure_message(trial: KubeTrial, obj: dict[str, Any]) -> str:
    """Why it failed: the job's failed condition and what its pods reported."""
    parts = []
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Failed" and cond.get("status") == "True":
            parts.append(f"{obj.get('kind', 'job')} failed: {cond.get('reason', '')} {cond.get('message', '')}".strip())
    for name, pod in sorted(trial.pods.items()):
        status = pod.get("status") or {}
        if status.get("reason"):  # Evicted, DeadlineExceeded, NodeLost…
            parts.append(f"pod {name} {status['reason']}: {status.get('message', '')}".strip(": "))
        for cs in status.get("containerStatuses") or []:
            terminated = (cs.get("state") or {}).get("terminated") or {}
            if terminated and terminated.get("exitCode", 0) != 0:
                parts.append(f"container {cs.get('name')} in pod {name} ended {terminated.get('reason', 'Error')} "
                             f"(exit code {terminated.get('exitCode')})")
    return "; ".join(parts) or "the job failed"


def waiting(trial: KubeTrial) -> RunState | None:
    """What a trial still running waits for, as a state its Running condition shows
    (reason and message), or None when it is not waiting: Kueue's admission while its job
    is queued and suspended, or a GPU (a node) while a pod of it is unschedulable."""
    obj = trial.obj or {}
    for field, path in (("failureCondition", trial.failure), ("successCondition", trial.success)):
        found = condition_unreadable(obj, path) if path else None
        if found is not None:  # Katib cannot read it either, and leaves its trial as it was
            return RunState(False, reason="ConditionNotAnObject",
                            message=f"the trial's {field} finds {_short(found)} in its {obj.get('kind', 'job')}, not a "
                                    "condition object (Katib reads the first match as one): it does not end the trial")
    if trial.queue and suspended(obj):
        return RunState(False, reason="WaitingForAdmission",
                        message=waiting_message(trial.queue, str(obj.get("kind", "job")), trial.workload))
    for name, pod in sorted(trial.pods.items()):
        status = pod.get("status") or {}
        if status.get("phase") not in (None, "Pending"):
            continue
        for cond in status.get("conditions") or []:
            if cond.get("type") == "PodScheduled" and cond.get("status") == "False" and cond.get("reason") == "Unschedulable":
                said = str(cond.get("message") or "no node fits it")
                if "gpu" in said.lower():
                    return RunState(False, reason="WaitingForGPU",
                                    message=f"waiting for a GPU: pod {name} is unschedulable: {said}")
                return RunState(False, reason="Unschedulable", message=f"waiting for a node: pod {name} is unschedulable: {said}")
    return None


def _short(value: Any) -> str:
    import json

    text = json.dumps(value)
    return text if len(text) <= 80 else text[:77] + "..."
