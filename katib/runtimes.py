"""Kubeflow Trainer's training runtimes without a cluster, and a TrainJob resolved against one.

A ``trainer.kubeflow.org/v1alpha1`` ``TrainJob`` names a runtime (``spec.runtimeRef``: a
``ClusterTrainingRuntime`` by default, or a namespaced ``TrainingRuntime``). The runtime's
JobSet template holds the trainer's replicated job (labelled
``trainer.kubeflow.org/trainjob-ancestor-step: trainer``) with its container ``node``; the
TrainJob's ``spec.trainer`` overrides that container's image, command, args, env and
resources and the number of nodes, as Trainer's controller does.

Runtimes here: the default ``torch-distributed`` ships built in (Trainer's own manifest);
others come from manifests: ``$KATIB_RUNTIMES`` names a YAML/JSON file of one or more
runtimes (or a ``List``), or a folder of such files, read by ``katib run``, ``katib validate``
and ``katib server`` alike; the server shows them (read-only) under
``/apis/trainer.kubeflow.org/v1alpha1/clustertrainingruntimes`` and
``.../namespaces/{ns}/trainingruntimes``.
"""

from __future__ import annotations

import copy
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .errors import FieldError, ValidationError
from .spec import Limits

TRAINER_GROUP = "trainer.kubeflow.org"
TRAINER_VERSION = "v1alpha1"
# The Kubeflow Trainer release whose API this follows (its TrainJob, runtimes and patches).
TRAINER_RELEASE = "v2.3.0"
TRAINER_API_VERSION = f"{TRAINER_GROUP}/{TRAINER_VERSION}"
TRAINJOB_KIND = "TrainJob"
CLUSTER_KIND = "ClusterTrainingRuntime"
NAMESPACED_KIND = "TrainingRuntime"
RUNTIMES_ENV = "KATIB_RUNTIMES"
ANCESTOR_LABEL = "trainer.kubeflow.org/trainjob-ancestor-step"
FRAMEWORK_LABEL = "trainer.kubeflow.org/framework"
NODE = "node"
DEFAULT_RUNTIME = "torch-distributed"

# Trainer's charts/kubeflow-trainer/files/runtimes/torch-distributed.yaml.
TORCH_DISTRIBUTED: dict[str, Any] = {
    "apiVersion": TRAINER_API_VERSION,
    "kind": CLUSTER_KIND,
    "metadata": {"name": DEFAULT_RUNTIME, "labels": {FRAMEWORK_LABEL: "torch"}},
    "spec": {
        "mlPolicy": {"numNodes": 1, "torch": {}},
        "template": {"spec": {"replicatedJobs": [{
            "name": NODE,
            "template": {
                "metadata": {"labels": {ANCESTOR_LABEL: "trainer"}},
                "spec": {"template": {"spec": {"containers": [
                    {"name": NODE, "image": "pytorch/pytorch:2.13.0-cuda13.0-cudnn9-runtime"},
                ]}}},
            },
        }]}},
    },
}


def is_trainjob(manifest: Any) -> bool:
    return (isinstance(manifest, dict) and manifest.get("kind") == TRAINJOB_KIND
            and str(manifest.get("apiVersion", "")).startswith(TRAINER_GROUP + "/"))


def runtime_errors(manifest: Any, path: str = "") -> list[FieldError]:
    """What keeps ``manifest`` from being a training runtime Trainer (and the SDK) accept."""
    p = f"{path}." if path else ""
    if not isinstance(manifest, dict):
        return [FieldError(path or "runtime", "must be a mapping")]
    errors = []
    if manifest.get("kind") not in (CLUSTER_KIND, NAMESPACED_KIND):
        errors.append(FieldError(f"{p}kind", f"must be {CLUSTER_KIND} or {NAMESPACED_KIND} (got {manifest.get('kind')!r})"))
    meta = manifest.get("metadata") or {}
    if not isinstance(meta, dict) or not meta.get("name"):
        errors.append(FieldError(f"{p}metadata.name", "is required"))
    elif not isinstance(meta.get("labels"), dict) or FRAMEWORK_LABEL not in meta["labels"]:
        errors.append(FieldError(f"{p}metadata.labels", f"must hold {FRAMEWORK_LABEL} (the SDK reads the framework from it)"))
    spec = manifest.get("spec") or {}
    if not isinstance(spec, dict) or not isinstance(spec.get("mlPolicy"), dict):
        errors.append(FieldError(f"{p}spec.mlPolicy", "is required"))
    if _trainer_container(manifest) is None:
        errors.append(FieldError(
            f"{p}spec.template.spec.replicatedJobs",
            f"must hold a replicated job labelled {ANCESTOR_LABEL}: trainer with a container named {NODE!r}",
        ))
    return errors


def _trainer_container(runtime: dict[str, Any]) -> dict[str, Any] | None:
    jobs = ((((runtime.get("spec") or {}).get("template") or {}).get("spec") or {}).get("replicatedJobs")) or []
    for rjob in jobs if isinstance(jobs, list) else []:
        template = (rjob or {}).get("template") or {}
        labels = (template.get("metadata") or {}).get("labels") or {}
        if labels.get(ANCESTOR_LABEL) != "trainer":
            continue
        pod = ((template.get("spec") or {}).get("template") or {}).get("spec") or {}
        for container in pod.get("containers") or []:
            if isinstance(container, dict) and container.get("name") == NODE:
                return container
    return None


class Runtimes:
    """The training runtimes known in this process: cluster-wide by name, namespaced by
    (namespace, name); thread-safe."""

    def __init__(self, builtin: bool = True) -> None:
        self._lock = threading.Lock()
        self._cluster: dict[str, dict[str, Any]] = {}
        self._namespaced: dict[tuple[str, str], dict[str, Any]] = {}
        if builtin:
            self.add(TORCH_DISTRIBUTED)

    def add(self, manifest: Any, namespace: str | None = None) -> dict[str, Any]:
        """Keep ``manifest`` (replacing one of the same kind and name); ``ValidationError`` if it is not a runtime."""
        errors = runtime_errors(manifest)
        if errors:
            raise ValidationError(errors)
        runtime = copy.deepcopy(manifest)
        runtime.setdefault("apiVersion", TRAINER_API_VERSION)
        name = str(runtime["metadata"]["name"])
        with self._lock:
            if runtime["kind"] == CLUSTER_KIND:
                runtime["metadata"].pop("namespace", None)
                self._cluster[name] = runtime
            else:
                ns = namespace or str(runtime["metadata"].get("namespace") or "default")
                runtime["metadata"]["namespace"] = ns
                self._namespaced[(ns, name)] = runtime
        return copy.deepcopy(runtime)

    def get(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        with self._lock:
            found = (self._cluster.get(name) if kind == CLUSTER_KIND
                     else self._namespaced.get((namespace or "default", name)))
            return copy.deepcopy(found) if found is not None else None

    def list(self, kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            if kind == CLUSTER_KIND:
                items = [self._cluster[k] for k in sorted(self._cluster)]
            else:
                items = [v for (ns, _), v in sorted(self._namespaced.items()) if ns == (namespace or "default")]
            return copy.deepcopy(items)

    def delete(self, kind: str, name: str, namespace: str | None = None) -> bool:
        with self._lock:
            if kind == CLUSTER_KIND:
                return self._cluster.pop(name, None) is not None
            return self._namespaced.pop((namespace or "default", name), None) is not None

    def load(self, source: str | Path) -> int:
        """Add every runtime in a file or folder; how many were added."""
        path = Path(source).expanduser()
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml", ".json"))
        elif path.is_file():
            files = [path]
        else:
            raise ValidationError([FieldError(RUNTIMES_ENV, f"{path} is neither a file nor a folder")])
        count = 0
        for f in files:
            try:
                text = f.read_text()
                docs = [json.loads(text)] if f.suffix == ".json" else list(yaml.safe_load_all(text))
            except (OSError, ValueError, yaml.YAMLError) as exc:
                raise ValidationError([FieldError(str(f), f"cannot read training runtimes: {exc}")]) from None
            for doc in docs:
                items = doc.get("items") if isinstance(doc, dict) and doc.get("kind") == "List" else [doc]
                for item in items or []:
                    if isinstance(item, dict) and item.get("kind") in (CLUSTER_KIND, NAMESPACED_KIND):
                        self.add(item)
                        count += 1
        return count


_REGISTRY = Runtimes()
_LOADED: set[str] = set()
_REGISTRY_LOCK = threading.Lock()


def registry() -> Runtimes:
    """This process's runtimes: the built-in ones, plus those in ``$KATIB_RUNTIMES`` (read
    once per value it takes)."""
    source = os.environ.get(RUNTIMES_ENV)
    if source:
        with _REGISTRY_LOCK:
            if source not in _LOADED:
                _REGISTRY.load(source)
                _LOADED.add(source)
    return _REGISTRY


@dataclass
class ResolvedTrainJob:
    """A TrainJob's trainer nodes as its runtime and its ``spec.trainer`` make them."""

    runtime: dict[str, Any]
    container: dict[str, Any]  # the ``node`` container, overridden by spec.trainer
    num_nodes: int
    torch: bool  # the runtime's mlPolicy is torch's (torchrun's environment)
    proc_per_node: str  # mlPolicy.torch.numProcPerNode (or spec.trainer's), "auto" by default


def runtime_ref_errors(trainjob: dict[str, Any], namespace: str, runtimes: Runtimes | None = None) -> list[FieldError]:
    """What is wrong with ``trainjob``'s ``spec.runtimeRef`` here (the runtime it names is
    not known in ``namespace``, say); checked when an experiment is admitted, so that one
    whose every trial would fail at launch is refused before it is stored."""
    runtimes = runtimes or registry()
    spec = trainjob.get("spec") or {}
    ref = spec.get("runtimeRef") or {}
    name = ref.get("name") if isinstance(ref, dict) else None
    if not name:
        return [FieldError("spec.runtimeRef.name", "is required")]
    kind = ref.get("kind") or CLUSTER_KIND
    if kind not in (CLUSTER_KIND, NAMESPACED_KIND):
        return [FieldError("spec.runtimeRef.kind", f"must be {CLUSTER_KIND} or {NAMESPACED_KIND} (got {kind!r})")]
    if runtimes.get(kind, str(name), namespace) is None:
        known = ", ".join(r["metadata"]["name"] for r in runtimes.list(kind, namespace)) or "none"
        return [FieldError(
            "spec.runtimeRef.name",
            f"the {kind} {name!r} is not known here (known: {known}): name a file or folder of runtime "
            f"manifests in ${RUNTIMES_ENV} (for katib server, when it starts)",
        )]
    return []


def resolve(trainjob: dict[str, Any], namespace: str, runtimes: Runtimes | None = None) -> ResolvedTrainJob:
    """``trainjob`` resolved against its runtime; ``ValidationError`` naming the field when it cannot be."""
    runtimes = runtimes or registry()
    errors = runtime_ref_errors(trainjob, namespace, runtimes)
    if errors:
        raise ValidationError(errors)
    spec = trainjob.get("spec") or {}
    ref = spec["runtimeRef"]
    runtime = runtimes.get(ref.get("kind") or CLUSTER_KIND, str(ref["name"]), namespace)
    assert runtime is not None  # runtime_ref_errors found it
    base = _trainer_container(runtime)
    assert base is not None  # runtimes are checked when added
    container = copy.deepcopy(base)
    trainer = spec.get("trainer") or {}
    for field in ("image", "command", "args"):
        if trainer.get(field) is not None:
            container[field] = copy.deepcopy(trainer[field])
    if trainer.get("env"):
        env = {e.get("name"): e for e in container.get("env") or [] if isinstance(e, dict)}
        for item in trainer["env"]:
            if isinstance(item, dict):
                env[item.get("name")] = copy.deepcopy(item)
        container["env"] = list(env.values())
    if trainer.get("resourcesPerNode") is not None:
        container["resources"] = copy.deepcopy(trainer["resourcesPerNode"])
    policy = (runtime.get("spec") or {}).get("mlPolicy") or {}
    nodes = trainer.get("numNodes") or policy.get("numNodes") or 1
    try:
        num_nodes = int(nodes)
    except (TypeError, ValueError, OverflowError):
        raise ValidationError([FieldError("spec.trainer.numNodes", f"must be a positive integer (got {nodes!r})")]) from None
    if num_nodes < 1:
        raise ValidationError([FieldError("spec.trainer.numNodes", f"must be a positive integer (got {nodes!r})")])
    limits = Limits.current()  # a stored trial's count, and the runtime's, bound as admission bounds the template's
    if problem := limits.exceeded("replicas", num_nodes):
        raise ValidationError([FieldError("spec.trainer.numNodes", problem)])
    torch = isinstance(policy.get("torch"), dict)
    nproc = str(trainer.get("numProcPerNode") or (policy.get("torch") or {}).get("numProcPerNode") or "auto")
    if nproc == "auto" and not _gpus(container.get("resources")):
        nproc = str(max(1, _cpus(container.get("resources"))))  # Trainer's torch plugin: one process per CPU asked for
    return ResolvedTrainJob(runtime, container, num_nodes, torch, nproc)


def _quantity(resources: Any, key: str) -> float:
    if not isinstance(resources, dict):
        return 0.0
    for kind in ("requests", "limits"):
        value = (resources.get(kind) or {}).get(key)
        if value is not None:
            text = str(value)
            try:
                return float(text[:-1]) / 1000 if text.endswith("m") else float(text)
            except ValueError:
                return 0.0
    return 0.0


def _gpus(resources: Any) -> int:
    return int(_quantity(resources, "nvidia.com/gpu"))


def _cpus(resources: Any) -> int:
    return int(_quantity(resources, "cpu"))


__all__ = [
    "CLUSTER_KIND", "DEFAULT_RUNTIME", "NAMESPACED_KIND", "NODE", "RUNTIMES_ENV", "TORCH_DISTRIBUTED",
    "TRAINER_API_VERSION", "TRAINER_GROUP", "TRAINER_VERSION", "TRAINJOB_KIND", "ResolvedTrainJob", "Runtimes",
    "is_trainjob", "registry", "resolve", "runtime_errors",
]
