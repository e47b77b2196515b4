"""The trial template's workload, checked as Kubernetes would check it at launch: how long and
how wide a job runs (deadlines, replicas) and what each container asks for (resources, env).

Every value is checked where the user wrote it (``trialSpec``, not the rendered job), so the
field path points into their document; a value holding a ``${trialParameters.…}``
placeholder is only known per trial and is left to the cluster.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from katib.errors import FieldError

from ._limits import Limits
from ._quantity import EXAMPLES, parse_quantity
from ._template import PLACEHOLDER

GPU_KEY = "nvidia.com/gpu"
REPLICA_TYPE = re.compile(r"[A-Za-z][A-Za-z0-9]{0,62}")  # Kubeflow's replica types: Master, Worker, PS, …


def workload_errors(trial_spec: dict[str, Any], path: str, limits: Limits) -> list[FieldError]:
    """Every rule the workload ``trial_spec`` (at ``path``) breaks."""
    errors: list[FieldError] = []
    spec = trial_spec.get("spec")
    if isinstance(spec, dict):
        sp = f"{path}.spec"
        errors += _deadline(spec, sp)
        if isinstance(spec.get("runPolicy"), dict):  # Kubeflow training jobs
            errors += _deadline(spec["runPolicy"], f"{sp}.runPolicy")
        if trial_spec.get("kind") == "Job":
            for field in ("parallelism", "completions"):
                if field in spec:
                    errors += _replicas(spec[field], f"{sp}.{field}", limits)
        for key, replica_specs in spec.items():
            if key.endswith("ReplicaSpecs") and isinstance(replica_specs, dict):
                for role, rs in replica_specs.items():
                    if not REPLICA_TYPE.fullmatch(str(role)):
                        errors.append(FieldError(f"{sp}.{key}", f"a replica type must be a word of letters and digits, "
                                                 f"at most 63 (Master, Worker, Chief, PS, Evaluator; got {str(role)[:80]!r})"))
                        continue
                    if isinstance(rs, dict) and "replicas" in rs:
                        errors += _replicas(rs["replicas"], f"{sp}.{key}.{role}.replicas", limits)
    if trial_spec.get("kind") == "TrainJob" and isinstance(spec, dict):
        errors += _trainjob(spec, f"{path}.spec", limits)
    for pod, pod_path in _pod_specs(trial_spec, path):
        errors += _deadline(pod, pod_path)
        for field in ("initContainers", "containers"):
            for i, container in enumerate(pod.get(field) or []):
                if isinstance(container, dict):
                    cpath = f"{pod_path}.{field}[{i}]"
                    errors += _resources(container, cpath) + _env(container, cpath)
    return errors


def _pod_specs(obj: Any, path: str) -> list[tuple[dict[str, Any], str]]:
    """Every pod spec (a mapping with a ``containers`` list) inside ``obj``, with its path."""
    if isinstance(obj, list):
        return [found for i, item in enumerate(obj) for found in _pod_specs(item, f"{path}[{i}]")]
    if not isinstance(obj, dict):
        return []
    if isinstance(obj.get("containers"), list):
        return [(obj, path)]
    return [found for key, value in obj.items() for found in _pod_specs(value, f"{path}.{key}")]


def _unknown(value: Any) -> bool:
    """A value only a trial's assignments decide."""
    return isinstance(value, str) and PLACEHOLDER.search(value) is not None


def _deadline(owner: dict[str, Any], path: str) -> list[FieldError]:
    value = owner.get("activeDeadlineSeconds")
    field = f"{path}.activeDeadlineSeconds"
    if value is None or _unknown(value):
        return []
    if isinstance(value, bool) or not isinstance(value, int):
        return [FieldError(field, f"must be an integer (got {value!r})")]
    if value <= 0:
        return [FieldError(field, f"must be a positive integer (got {value})")]
    return []


def _replicas(value: Any, path: str, limits: Limits) -> list[FieldError]:
    if _unknown(value):
        return []
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return [FieldError(path, f"must be a non-negative integer (got {value!r})")]
    problem = limits.exceeded("replicas", value)
    return [FieldError(path, problem)] if problem else []


def _trainjob(spec: dict[str, Any], sp: str, limits: Limits) -> list[FieldError]:
    """Kubeflow Trainer's TrainJob: a runtime named, the trainer's nodes and resources."""
    errors = []
    ref = spec.get("runtimeRef")
    if not isinstance(ref, dict) or not ref.get("name"):
        errors.append(FieldError(f"{sp}.runtimeRef.name", "is required (the training runtime, e.g. torch-distributed)"))
    elif ref.get("kind") not in (None, "ClusterTrainingRuntime", "TrainingRuntime"):
        errors.append(FieldError(f"{sp}.runtimeRef.kind", f"must be ClusterTrainingRuntime or TrainingRuntime (got {ref.get('kind')!r})"))
    trainer = spec.get("trainer")
    if trainer is None:
        return errors
    if not isinstance(trainer, dict):
        return errors + [FieldError(f"{sp}.trainer", f"must be a mapping (got {trainer!r})")]
    if "numNodes" in trainer:
        if _unknown(trainer["numNodes"]) or (isinstance(trainer["numNodes"], int) and trainer["numNodes"] >= 1):
            errors += _replicas(trainer["numNodes"], f"{sp}.trainer.numNodes", limits)
        else:
            errors.append(FieldError(f"{sp}.trainer.numNodes", f"must be a positive integer (got {trainer['numNodes']!r})"))
    for field in ("command", "args"):
        if field in trainer and not isinstance(trainer[field], list):
            errors.append(FieldError(f"{sp}.trainer.{field}", f"must be a list of strings (got {trainer[field]!r})"))
    if "resourcesPerNode" in trainer:
        errors += [FieldError(e.path.replace(".trainer.resources", ".trainer.resourcesPerNode", 1), e.message)
                   for e in _resources({"resources": trainer["resourcesPerNode"]}, f"{sp}.trainer")]
    if "env" in trainer:
        errors += _env(trainer, f"{sp}.trainer")
    return errors


def _is_extended(name: str) -> bool:
    """Kubernetes' extended resources (``nvidia.com/gpu``): counted in whole units."""
    return "/" in name and not name.startswith(("kubernetes.io/", "requests."))


def _resources(container: dict[str, Any], cpath: str) -> list[FieldError]:
    res = container.get("resources")
    rpath = f"{cpath}.resources"
    if res is None:
        return []
    if not isinstance(res, dict):
        return [FieldError(rpath, f"must be a mapping with requests and limits (got {res!r})")]
    errors = []
    for kind in ("requests", "limits"):
        quantities = res.get(kind)
        qpath = f"{rpath}.{kind}"
        if quantities is None:
            continue
        if not isinstance(quantities, dict):
            errors.append(FieldError(qpath, f"must be a mapping of resource names to quantities (got {quantities!r})"))
            continue
        for name, value in quantities.items():
            if _unknown(value):
                continue
            problem = _quantity_problem(str(name), value)
            if problem:
                errors.append(FieldError(f"{qpath}.{name}", problem))
    return errors


def _quantity_problem(name: str, value: Any) -> str | None:
    try:
        number = parse_quantity(value)
    except ValueError:
        number = None
    if _is_extended(name) or name == GPU_KEY:
        if number is None or number < 0 or number != number.to_integral_value():
            return f"must be a non-negative integer (got {value!r})"
        return None
    if number is None:
        return f"must be a Kubernetes quantity such as {EXAMPLES} (got {value!r})"
    if number < Decimal(0):
        return f"must not be negative (got {value!r})"
    return None


def _env(container: dict[str, Any], cpath: str) -> list[FieldError]:
    env = container.get("env")
    epath = f"{cpath}.env"
    if env is None:
        return []
    if not isinstance(env, list):
        got = "a mapping" if isinstance(env, dict) else repr(env)
        return [FieldError(epath, f"must be a list of {{name, value}} (got {got}; write - name: A, value: 'b')")]
    errors = []
    for i, item in enumerate(env):
        ipath = f"{epath}[{i}]"
        if not isinstance(item, dict):
            errors.append(FieldError(ipath, f"must be a mapping with name and value (got {item!r})"))
            continue
        name = item.get("name")
        if name is None or name == "":
            errors.append(FieldError(f"{ipath}.name", "is required"))
        elif not isinstance(name, str):
            errors.append(FieldError(f"{ipath}.name", f"must be a string (got {name!r})"))
        value = item.get("value")
        if value is not None and not isinstance(value, str):
            errors.append(FieldError(f"{ipath}.value", f"must be a string (got {value!r}); quote it in YAML"))
    return errors


__all__ = ["workload_errors"]
