"""``SetTrialStatus`` for a Katib control plane, as Katib's medianstop service does it: the
``Trial`` custom object (``kubeflow.org/v1beta1``, ``trials``) gets an ``EarlyStopped``
condition appended to its status, through the Kubernetes API, and Katib's trial controller
does the rest. This is what ``katib suggestion serve`` does when it stands in for Katib's
early-stopping pod; under ``katib server --grpc-port`` our own controllers stop the trial.

The namespace is the service's own (its service account's, as upstream assumes that the
trials live beside it), else ``default`` with the local kubeconfig, or the one given.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

SA_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
GROUP, VERSION, PLURAL = "kubeflow.org", "v1beta1", "trials"
CONFLICT_RETRIES = 5


def kube_trial_stopper(namespace: str | None = None, api_client: Any = None) -> Callable[[str], str | None]:
    """A ``set_trial_status`` for ``suggestion.serve``: the trial's name in, an error
    message (or None) out. The Kubernetes configuration is read at the first call."""
    lock = threading.Lock()
    made: dict[str, Any] = {}

    def connect() -> tuple[Any, str]:
        with lock:
            if not made:
                from kubernetes import client, config

                ns = namespace
                if api_client is None:
                    if SA_NAMESPACE.exists():  # in a pod: upstream's way
                        config.load_incluster_config()
                        ns = ns or SA_NAMESPACE.read_text().strip()
                    else:
                        config.load_kube_config()
                made["api"] = client.CustomObjectsApi(api_client)
                made["namespace"] = ns or "default"
            return made["api"], made["namespace"]

    def set_trial_status(name: str) -> str | None:
        try:
            api, ns = connect()
        except ImportError:
            return ("SetTrialStatus patches the Trial through the Kubernetes API: install the kubernetes extra "
                    "(pip install 'katib[kubernetes]'), or serve the gRPC API from `katib server --grpc-port`")
        except Exception as exc:  # no in-cluster or local configuration
            return f"SetTrialStatus: no Kubernetes configuration to reach the Trial with ({exc})"
        from kubernetes.client.exceptions import ApiException

        for _ in range(CONFLICT_RETRIES):
            try:
                trial = api.get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name)
            except ApiException as exc:
                return f"Get Trial: {name} in namespace: {ns} failed: {exc.status} {exc.reason}"
            now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            condition = {"type": "EarlyStopped", "status": "True", "reason": "TrialEarlyStopped",
                         "message": "Trial is early stopped", "lastUpdateTime": now, "lastTransitionTime": now}
            status = trial.get("status") or {}
            status["conditions"] = [*(status.get("conditions") or []), condition]
            trial["status"] = status
            try:
                api.patch_namespaced_custom_object_status(GROUP, VERSION, ns, PLURAL, name, trial)
                return None
            except ApiException as exc:
                if exc.status != 409:  # a conflict: the Trial changed meanwhile; read it again
                    return f"Update status for Trial: {name} in namespace: {ns} failed: {exc.status} {exc.reason}"
        return f"Update status for Trial: {name} in namespace: {ns} failed: it kept changing ({CONFLICT_RETRIES} conflicts)"

    return set_trial_status


__all__ = ["kube_trial_stopper"]
