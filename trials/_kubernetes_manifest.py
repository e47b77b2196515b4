"""The object the Kubernetes executor creates for a trial: the rendered trial template,
named and labelled as Katib's trial controller does it, with katib's variables in the
primary container's env, the metrics-collector sidecar where the collector needs one, and
the pod fence's defaults (``_podfence.fence``), and Kueue's queue and priority labels
with the job created suspended (``_kubernetes_kueue``)."""

from __future__ import annotations

import copy
from typing import Any

from katib._pushtoken import PushTokens
from katib.runtimes import is_trainjob
from katib.spec import EXPERIMENT_LABEL, TRIAL_LABEL

from ._executor import TrialJob
from ._kubernetes_kueue import enqueue
from ._manifest import pod_templates
from ._podfence import fence
from ._sidecar import INJECTED_KINDS, add_sidecar
from ._trainjob import label_trainjob


def pod_env(job: TrialJob, push_url: str | None, push_tokens: PushTokens | None) -> dict[str, str]:
    """What katib puts in the primary container's env: the trial's name and namespace and,
    for the Push collector, the server's address and a token for this trial's metrics only."""
    ours = {"KATIB_TRIAL_NAME": job.name, "KATIB_NAMESPACE": job.namespace}
    if push_url:  # katib.report_metrics posts to the server running the trial
        ours["KATIB_PUSH_URL"] = push_url
        if push_tokens is not None:  # this trial's own, never the server's
            ours["KATIB_API_TOKEN"] = push_tokens.token(job.namespace, job.name)
    return ours


def trial_manifest(job: TrialJob, *, push_url: str | None = None, push_tokens: PushTokens | None = None,
                   db_manager_address: str | None = None, tenants: bool = False,
                   collector_images: dict[str, str] | None = None, queue: str | None = None,
                   priority_class: str | None = None) -> dict[str, Any]:
    """The object created for ``job``: the rendered template, named and labelled, in the
    Kueue ``queue`` (unless its template names its own) and then created suspended.
    ``LaunchError`` when the metrics collector's sidecar cannot be added, or Kueue's labels
    or kind are wrong."""
    manifest = copy.deepcopy(job.run_spec)
    labels = {EXPERIMENT_LABEL: job.experiment, TRIAL_LABEL: job.name}
    meta = manifest.setdefault("metadata", {})
    meta.update(name=job.name, namespace=job.namespace)
    meta["labels"] = {**(meta.get("labels") or {}), **labels}
    ours = pod_env(job, push_url, push_tokens)
    for _, template in pod_templates(manifest):
        tmeta = template.setdefault("metadata", {})
        tmeta["labels"] = {**(tmeta.get("labels") or {}), **labels}
        for container in template["spec"]["containers"]:
            if container.get("name") == job.primary_container:
                env = [e for e in container.get("env") or [] if e.get("name") not in ours]
                container["env"] = env + [{"name": k, "value": v} for k, v in ours.items()]
    if is_trainjob(manifest):  # its pods come from its runtime: label them through a patch
        label_trainjob(manifest, labels, ours, fenced=tenants)
    if _is_argo_workflow(manifest):
        # An Argo Workflow's pods take their labels from spec.podMetadata and each template's
        # metadata, not from the Workflow's (Katib's webhook labels every pod it finds under a
        # trial): without the trial's labels the executor never saw them, nor their logs.
        pmeta = manifest.setdefault("spec", {}).setdefault("podMetadata", {})
        pmeta["labels"] = {**(pmeta.get("labels") or {}), **labels}
    if job.collector in INJECTED_KINDS and db_manager_address and not tenants:
        add_sidecar(manifest, job, str(db_manager_address), (collector_images or {}).get(job.collector))
    enqueue(manifest, queue, priority_class)
    fence(manifest)
    return manifest


def _is_argo_workflow(manifest: dict[str, Any]) -> bool:
    return str(manifest.get("apiVersion", "")).startswith("argoproj.io/") and manifest.get("kind") == "Workflow"
