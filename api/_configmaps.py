"""The server's ConfigMaps (``/api/v1/namespaces/{ns}/configmaps``): trial templates for
experiments whose ``trialTemplate.configMap`` names them. One JSON file each, under
``<runs folder>/../configmaps/<namespace>/<name>.json``; data values must be strings, as
in Kubernetes. With ``--auth`` an experiment reads only its own namespace's ConfigMaps."""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from pathlib import Path
from typing import Any

from katib.configmaps import resolve_trial_template
from katib.errors import ConflictError, FieldError, NotFoundError, ValidationError
from katib.names import check, inside, private_dirs

from ._state import ServerState

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def _folder(state: ServerState, namespace: str) -> Path:
    check("namespace", namespace)
    return inside(state.runs_root.parent / "configmaps", namespace)


# Kubernetes allows 253 characters; a file name holds 255 bytes, with ``.json`` 250.
MAX_NAME = 250


def _path(state: ServerState, namespace: str, name: str, field: str = "metadata.name") -> Path:
    if len(name) > MAX_NAME or not _NAME.fullmatch(name):
        raise ValidationError([FieldError(field, "must be a DNS subdomain: lower-case letters, digits, '-' and '.', "
                                          f"at most {MAX_NAME} characters here (got {name[:300]!r})")],
                              "ConfigMap")
    return inside(_folder(state, namespace), f"{name}.json")


def _checked(doc: Any, namespace: str) -> dict[str, Any]:
    if not isinstance(doc, dict) or doc.get("kind", "ConfigMap") != "ConfigMap":
        raise ValidationError([FieldError("kind", "must be ConfigMap")], "ConfigMap")
    meta: dict[str, Any] = doc["metadata"] if isinstance(doc.get("metadata"), dict) else {}
    if meta.get("namespace") and meta["namespace"] != namespace:
        raise ValidationError([FieldError("metadata.namespace", f"must be {namespace!r}, the namespace in the URL "
                                          f"(got {meta['namespace']!r})")], "ConfigMap")
    data = doc.get("data") or {}
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        raise ValidationError([FieldError("data", "must map keys to strings")], "ConfigMap")
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {**meta, "namespace": namespace, "name": str(meta.get("name") or "")}, "data": data}


def create(state: ServerState, namespace: str, doc: Any) -> dict[str, Any]:
    cm = _checked(doc, namespace)
    path = _path(state, namespace, cm["metadata"]["name"])
    if path.exists():
        raise ConflictError(f'configmaps "{cm["metadata"]["name"]}" already exists')
    cm["metadata"].update(uid=str(uuid.uuid4()),
                          creationTimestamp=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    private_dirs(path.parent)  # configmaps/ and its namespaces' folders: 0700 when new
    # Written aside, then linked in: a link fails if the name is taken (two creates at once
    # both passed the check above, and the last one won), and a reader never sees half a
    # file. The listing reads *.json only.
    aside = path.with_name(f".{uuid.uuid4().hex}.tmp")  # not named after it: a long name would not fit
    text = json.dumps(cm)
    try:
        aside.write_text(text)
        try:
            os.link(aside, path)
        except FileExistsError:
            raise
        except OSError:  # a file system without hard links: an exclusive create, written in place
            with open(path, "x") as f:
                f.write(text)
    except FileExistsError:
        raise ConflictError(f'configmaps "{cm["metadata"]["name"]}" already exists') from None
    finally:
        aside.unlink(missing_ok=True)
    return cm


# Kubeflow Trainer's public control-plane ConfigMap, which the Kubeflow SDK's backends read
# at start for the version they talk to (a warning on every OptimizerClient without it):
# served, read-only, to every user, as a cluster with Trainer installed does.
PUBLIC = ("kubeflow-system", "kubeflow-trainer-public")


def public_configmap() -> dict[str, Any]:
    from katib.runtimes import TRAINER_RELEASE

    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": PUBLIC[1], "namespace": PUBLIC[0],
                         "labels": {"app.kubernetes.io/name": "trainer", "app.kubernetes.io/part-of": "kubeflow"}},
            "data": {"kubeflow_trainer_version": TRAINER_RELEASE}}


def get(state: ServerState, namespace: str, name: str) -> dict[str, Any]:
    path = _path(state, namespace, name)
    if not path.is_file():
        if (namespace, name) == PUBLIC:
            return public_configmap()
        raise NotFoundError(f'configmaps "{name}" not found')
    return json.loads(path.read_text())  # type: ignore[no-any-return]


def listing(state: ServerState, namespace: str, limit: int | None = None,
            after: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
    """The namespace's ConfigMaps by name, a page at a time: after the name ``after`` (the
    last page's ``metadata.continue``), at most ``limit`` and the server's page, and about
    its ``list_bytes`` (a page ends before the ConfigMap that would pass them, though it
    holds at least one); with the name to continue after while more follow. A namespace
    may hold any number of ConfigMaps of up to a request body each: read whole, a viewer's
    list of 60 of 1 MB took 1.75 s and 60 MB, and a few at once held the server."""
    if after is not None:
        _path(state, namespace, after, "continue")  # a name, or a 422 naming it
    folder = _folder(state, namespace)
    names = sorted(p.name for p in folder.glob("*.json")) if folder.is_dir() else []
    if after is not None:
        names = [n for n in names if n > f"{after}.json"]
    size = min(limit or state.limits.page, state.limits.page)
    items: list[dict[str, Any]] = []
    held, last = 0, -1
    for i, n in enumerate(names):
        if len(items) >= size:
            break
        try:
            weight = (folder / n).stat().st_size
            if items and held + weight > state.limits.list_bytes:
                break
            items.append(json.loads((folder / n).read_text()))
        except FileNotFoundError:  # deleted meanwhile
            continue
        held, last = held + weight, i
    more = bool(items) and last < len(names) - 1
    return items, (names[last].removesuffix(".json") if more else None)


def delete(state: ServerState, namespace: str, name: str) -> dict[str, Any]:
    path = _path(state, namespace, name)
    if not path.is_file():  # the built-in public one is not deleted, as it is not stored
        raise NotFoundError(f'configmaps "{name}" not found')
    cm = get(state, namespace, name)
    path.unlink()
    return cm


def with_template(state: ServerState, doc: Any, namespace: str) -> Any:
    """The experiment ``doc`` with its ConfigMap template read in, from this server's
    ConfigMaps; under ``--auth`` only its own namespace's."""
    if not isinstance(doc, dict):
        return doc
    ref = ((doc.get("spec") or {}).get("trialTemplate") or {})
    ref = ref.get("configMap") if isinstance(ref, dict) else None
    if not isinstance(ref, dict):
        return doc
    source = str(ref.get("configMapNamespace") or namespace)
    if state.users is not None and source != namespace:
        raise ValidationError([FieldError("spec.trialTemplate.configMap.configMapNamespace",
                                          f"must be {namespace!r}, the experiment's namespace, on a server with "
                                          f"--auth (got {source!r})")])
    check("namespace", source, "spec.trialTemplate.configMap.configMapNamespace")
    name = ref.get("configMapName")
    try:
        found = [get(state, source, name)] if isinstance(name, str) and name else []
    except (NotFoundError, ValidationError):
        found = []  # resolve_trial_template names the missing ConfigMap
    return resolve_trial_template(doc, found, "this server's ConfigMaps")
