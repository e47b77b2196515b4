"""The namespace and PersistentVolumeClaim reads of the Kubernetes API that Katib's own
end-to-end scripts make around their experiments (``test/e2e/v1beta1``): a namespace's
labels (with Katib's metrics-collector injection on: every namespace here collects
metrics), and the volume of a ``resumePolicy: FromVolume`` experiment's suggestion
(``<experiment>-<algorithm>``), which here is the algorithm's state kept in the store."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from katib.errors import FieldError, NotFoundError, ValidationError
from katib.spec import EXPERIMENT_LABEL
from katib.store import ExperimentRecord

from .._auth import can_read, current_user
from .._documents import merge_patch, read_document
from .._state import ServerState, get_state

router = APIRouter(tags=["kubernetes"])
INJECTION_LABEL = "katib.kubeflow.org/metrics-collector-injection"
STORAGE_NOTE = "katib.kubeflow.org/storage"
MAX_FIELDS = 20  # changed fields a refused patch names


def _namespace(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name, INJECTION_LABEL: "enabled"}},
            "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}


@router.get("/api/v1/namespaces")
def list_namespaces(request: Request, state: ServerState = Depends(get_state)) -> dict[str, Any]:
    """The namespaces that hold an experiment (``kubectl get namespaces``), those the caller
    may read under ``--auth``; at most the server's page of them."""
    user = current_user(request)
    names = [n for n in state.store.namespaces(state.limits.page) if can_read(user, n)]
    return {"apiVersion": "v1", "kind": "NamespaceList", "metadata": {"resourceVersion": ""},
            "items": [_namespace(n) for n in names]}


@router.get("/api/v1/namespaces/{namespace}")
def read_namespace(namespace: str) -> dict[str, Any]:
    """Every namespace exists here (an experiment's creates it); its labels are fixed."""
    return _namespace(namespace)


@router.patch("/api/v1/namespaces/{namespace}")
async def patch_namespace(namespace: str, request: Request) -> dict[str, Any]:
    """A patch that leaves the namespace as it is (setting the injection label to
    ``enabled``, say) is answered with it; any other change is refused, naming the field:
    nothing of a namespace is stored here."""
    patch = await read_document(request)
    current = _namespace(namespace)
    if isinstance(patch, list):  # a JSON patch: not applied here
        raise ValidationError([FieldError("body", "a JSON patch of a namespace is not supported; send a merge patch")],
                              "namespace patch")
    patched = merge_patch(current, patch)
    if patched != current:
        changed = _changes(current, patched)[:MAX_FIELDS]  # the first few: an answer of bounded size
        raise ValidationError([FieldError(f, "this server's namespaces are not stored: their labels and fields are "
                                             "fixed") for f in changed], "namespace patch")
    return current


def _changes(before: Any, after: Any, path: str = "") -> list[str]:
    if isinstance(before, dict) and isinstance(after, dict):
        out: list[str] = []
        for key in sorted(set(before) | set(after)):
            out += _changes(before.get(key), after.get(key), f"{path}.{key}" if path else key)
        return out
    return [] if before == after else [path]


def _from_volume(state: ServerState, namespace: str, name: str) -> ExperimentRecord | None:
    """The FromVolume experiment whose suggestion's volume is ``name`` (Katib names it
    ``<experiment>-<algorithm>``; both may hold dashes). Only a split whose tail names an
    algorithm is looked up: every dash of a 253-character name was up to 126 reads of a
    stored experiment per request."""
    from suggestion import algorithm_names

    known = algorithm_names()
    for at in [i for i, ch in enumerate(name) if ch == "-" and name[i + 1:] in known]:
        try:
            rec = state.store.get_experiment(namespace, name[:at])
        except (NotFoundError, ValueError):
            continue
        spec = rec.spec.get("spec", {})
        if spec.get("resumePolicy") == "FromVolume" and (spec.get("algorithm") or {}).get("algorithmName") == name[at + 1:]:
            return rec
    return None


@router.get("/api/v1/namespaces/{namespace}/persistentvolumeclaims/{name}")
def read_persistent_volume_claim(namespace: str, name: str, state: ServerState = Depends(get_state)) -> dict[str, Any]:
    """A ``resumePolicy: FromVolume`` experiment's suggestion volume, while the experiment
    exists. Katib keeps the algorithm's state on it; here the store keeps it, and the
    claim says so."""
    rec = _from_volume(state, namespace, name)
    if rec is None:
        raise NotFoundError(f'persistentvolumeclaims "{name}" not found')
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": name, "namespace": namespace, "labels": {EXPERIMENT_LABEL: rec.name},
                         "annotations": {STORAGE_NOTE: "the suggestion's state is kept in katib's store, with the "
                                                       "experiment"},
                         "ownerReferences": [{"apiVersion": "kubeflow.org/v1beta1", "kind": "Suggestion",
                                              "name": rec.name, "uid": rec.uid}]},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}},
                     "volumeMode": "Filesystem"},
            "status": {"phase": "Bound", "accessModes": ["ReadWriteOnce"], "capacity": {"storage": "1Gi"}}}
