"""The fields of a batch/v1 Job, down to its containers: Katib converts a Job trial template
to ``batchv1.Job`` and refuses one that does not convert whole (``validateTrialJob``:
``template.invalidSpec``, a container's ``comand``), so a misspelt field is an error at
admission, not a trial that runs without it.

The sets are the union of the fields Kubernetes 1.25 to 1.37 define (the OpenAPI schemas
``kubernetes-validate`` ships), so a field of any of those versions is accepted. Below a
container (probes, volumes, affinity…) fields are not checked.
"""

from __future__ import annotations

from typing import Any

from katib.errors import FieldError

JOB = frozenset({"apiVersion", "kind", "metadata", "spec", "status"})
JOB_SPEC = frozenset({
    "activeDeadlineSeconds", "backoffLimit", "backoffLimitPerIndex", "completionMode", "completions", "managedBy",
    "manualSelector", "maxFailedIndexes", "parallelism", "podFailurePolicy", "podReplacementPolicy", "scheduling",
    "selector", "successPolicy", "suspend", "template", "ttlSecondsAfterFinished"})
POD_TEMPLATE = frozenset({"metadata", "spec"})
OBJECT_META = frozenset({
    "annotations", "creationTimestamp", "deletionGracePeriodSeconds", "deletionTimestamp", "finalizers",
    "generateName", "generation", "labels", "managedFields", "name", "namespace", "ownerReferences",
    "resourceVersion", "selfLink", "uid"})
POD_SPEC = frozenset({
    "activeDeadlineSeconds", "affinity", "automountServiceAccountToken", "containers", "dnsConfig", "dnsPolicy",
    "enableServiceLinks", "ephemeralContainers", "evictionResponders", "hostAliases", "hostIPC", "hostNetwork",
    "hostPID", "hostUsers", "hostname", "hostnameOverride", "imagePullSecrets", "initContainers", "nodeName",
    "nodeSelector", "os", "overhead", "preemptionPolicy", "priority", "priorityClassName", "readinessGates",
    "resourceClaims", "resources", "restartPolicy", "runtimeClassName", "schedulerName", "schedulingGates",
    "schedulingGroup", "securityContext", "serviceAccount", "serviceAccountName", "setHostnameAsFQDN",
    "shareProcessNamespace", "subdomain", "terminationGracePeriodSeconds", "tolerations",
    "topologySpreadConstraints", "volumes", "workloadRef"})
CONTAINER = frozenset({
    "args", "command", "env", "envFrom", "image", "imagePullPolicy", "lifecycle", "livenessProbe", "name", "ports",
    "readinessProbe", "resizePolicy", "resources", "restartPolicy", "restartPolicyRules", "securityContext",
    "startupProbe", "stdin", "stdinOnce", "terminationMessagePath", "terminationMessagePolicy", "tty",
    "volumeDevices", "volumeMounts", "workingDir"})


def _unknown(obj: Any, known: frozenset[str], path: str, what: str) -> list[FieldError]:
    if not isinstance(obj, dict):
        return []
    return [FieldError(f"{path}.{key}", f"is not a field of a {what} (a batch/v1 Job trial template must convert "
                                        "to a Job whole, as Katib's webhook asks)")
            for key in obj if key not in known]


def unknown_job_fields(job: dict[str, Any], path: str) -> list[FieldError]:
    """The fields of a batch/v1 Job trial template that a Job does not have, each named."""
    errors = _unknown(job, JOB, path, "Job")
    errors += _unknown(job.get("metadata"), OBJECT_META, f"{path}.metadata", "Job's metadata")
    spec = job.get("spec")
    errors += _unknown(spec, JOB_SPEC, f"{path}.spec", "Job's spec")
    template = spec.get("template") if isinstance(spec, dict) else None
    tp = f"{path}.spec.template"
    errors += _unknown(template, POD_TEMPLATE, tp, "pod template")
    if isinstance(template, dict):
        errors += _unknown(template.get("metadata"), OBJECT_META, f"{tp}.metadata", "pod template's metadata")
        pod = template.get("spec")
        errors += _unknown(pod, POD_SPEC, f"{tp}.spec", "pod's spec")
        if isinstance(pod, dict):
            for field in ("containers", "initContainers"):
                listed = pod.get(field)
                for i, c in enumerate(listed if isinstance(listed, list) else []):
                    errors += _unknown(c, CONTAINER, f"{tp}.spec.{field}[{i}]", "container")
    return errors
