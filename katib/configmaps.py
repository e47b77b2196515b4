"""ConfigMap trial templates (``spec.trialTemplate.configMap``) without a cluster.

Katib reads the trial template from the ConfigMap ``configMapNamespace/configMapName``,
key ``templatePath``. Here the ConfigMaps come from manifests: ``katib run --configmaps
PATH`` (or ``$KATIB_CONFIGMAPS``) names a YAML/JSON file (one or more ConfigMaps, or a
``List`` of them) or a folder of such files; ``katib server`` keeps the ones created
through ``/api/v1/namespaces/{ns}/configmaps``. When an experiment is submitted its
template is read once and stored inline as ``trialSpec``; the annotation
``katib.kubeflow.org/trial-template-configmap`` records where it came from (Katib reads
the ConfigMap again for each trial, so an edit mid-experiment changes later trials there;
here the experiment keeps the template it started with). ``katib run --executor kubernetes``
without ``--configmaps`` reads the ConfigMap from the cluster (``resolve_from_cluster``).
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from .errors import FieldError, ValidationError

CONFIGMAPS_ENV = "KATIB_CONFIGMAPS"
SOURCE_ANNOTATION = "katib.kubeflow.org/trial-template-configmap"
_FIELD = "spec.trialTemplate.configMap"


def _documents(path: Path) -> list[Any]:
    try:
        text = path.read_text()
        return [json.loads(text)] if path.suffix == ".json" else list(yaml.safe_load_all(text))
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise ValidationError([FieldError(str(path), f"cannot read ConfigMaps: {exc}")]) from None


def read_configmaps(source: str | Path) -> list[dict[str, Any]]:
    """The ConfigMap manifests in a file or a folder (``*.yaml``, ``*.yml``, ``*.json``)."""
    path = Path(source).expanduser()
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml", ".json"))
    elif path.is_file():
        files = [path]
    else:
        raise ValidationError([FieldError(f"--configmaps ({CONFIGMAPS_ENV})", f"{path} is neither a file nor a folder")])
    found: list[dict[str, Any]] = []
    for f in files:
        for doc in _documents(f):
            items = doc.get("items") if isinstance(doc, dict) and doc.get("kind") == "List" else [doc]
            found += [d for d in items or [] if isinstance(d, dict) and d.get("kind") == "ConfigMap"]
    return found


def configmap_key(cm: dict[str, Any], default_namespace: str = "default") -> tuple[str, str]:
    meta = cm.get("metadata") or {}
    return str(meta.get("namespace") or default_namespace), str(meta.get("name") or "")


def resolve_trial_template(doc: Any, configmaps: Iterable[dict[str, Any]], where: str = "") -> Any:
    """``doc`` with its ConfigMap trial template read into ``trialSpec``; any other
    document unchanged. ``ValidationError`` names the field when the ConfigMap, its key or
    the template is missing or unreadable (``where`` says where the ConfigMaps were looked for)."""
    if not isinstance(doc, dict):
        return doc
    template = ((doc.get("spec") or {}).get("trialTemplate") or {})
    ref = template.get("configMap") if isinstance(template, dict) else None
    if not isinstance(ref, dict):
        return doc
    # configMapNamespace defaults to the experiment's namespace (katib.spec's defaults).
    meta = doc.get("metadata") or {}
    name, key = ref.get("configMapName"), ref.get("templatePath")
    namespace = ref.get("configMapNamespace") or meta.get("namespace") or "default"
    if not (name and namespace and key):
        return doc  # the validator names what is missing
    maps = {configmap_key(cm): cm for cm in configmaps}
    cm = maps.get((str(namespace), str(name)))
    suffix = f" ({where})" if where else ""
    if cm is None:
        raise ValidationError([FieldError(f"{_FIELD}.configMapName", f"ConfigMap {namespace}/{name} not found{suffix}")])
    data = cm.get("data") or {}
    if key not in data:
        keys = ", ".join(sorted(data)) or "none"
        raise ValidationError([FieldError(f"{_FIELD}.templatePath",
                                          f"ConfigMap {namespace}/{name} has no key {key!r} (keys: {keys})")])
    from katib.spec import load_documents

    try:  # bounded as an experiment's own YAML is: aliases, depth, duplicate keys
        docs = load_documents(str(data[key]))
    except ValidationError as exc:
        raise ValidationError([FieldError(f"{_FIELD}.templatePath", f"ConfigMap {namespace}/{name} key {key!r} is not "
                                          f"YAML: {'; '.join(str(e) for e in exc.errors)}")]) from None
    spec = docs[0] if len(docs) == 1 else None
    if not isinstance(spec, dict):
        raise ValidationError([FieldError(f"{_FIELD}.templatePath",
                                          f"ConfigMap {namespace}/{name} key {key!r} is not a trial spec (a mapping)")])
    out = copy.deepcopy(doc)
    tt = out["spec"]["trialTemplate"]
    del tt["configMap"]
    tt["trialSpec"] = spec
    meta = out.setdefault("metadata", {})
    meta.setdefault("annotations", {})[SOURCE_ANNOTATION] = f"{namespace}/{name}/{key}"
    return out


def resolve_from_cluster(doc: Any, api_client: Any, where: str = "the cluster") -> Any:
    """``doc`` with its ConfigMap trial template read from a Kubernetes cluster (the official
    client's ``api_client``), as Katib reads it (``--executor kubernetes`` without
    ``--configmaps``); any other document unchanged, without a call."""
    if not isinstance(doc, dict):
        return doc
    template = (doc.get("spec") or {}).get("trialTemplate") or {}
    ref = template.get("configMap") if isinstance(template, dict) else None
    if not isinstance(ref, dict) or not (ref.get("configMapName") and ref.get("templatePath")):
        return doc  # no ConfigMap, or the validator names what is missing
    namespace = str(ref.get("configMapNamespace") or (doc.get("metadata") or {}).get("namespace") or "default")
    name = str(ref["configMapName"])
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    try:
        cm = client.CoreV1Api(api_client).read_namespaced_config_map(name, namespace)
        found = [{"kind": "ConfigMap", "metadata": {"namespace": namespace, "name": name}, "data": cm.data or {}}]
    except ApiException as exc:
        if exc.status != 404:
            raise ValidationError([FieldError(f"{_FIELD}.configMapName", f"cannot read ConfigMap {namespace}/{name} "
                                              f"from {where}: {exc.status} {exc.reason}")]) from None
        found = []
    return resolve_trial_template(doc, found, where)


def from_env(flag: str | None = None) -> list[dict[str, Any]] | None:
    """The ConfigMaps named by ``flag`` or ``$KATIB_CONFIGMAPS``; None when neither is set."""
    source = flag or os.environ.get(CONFIGMAPS_ENV)
    return read_configmaps(source) if source else None
