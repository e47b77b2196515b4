"""The trial template's workload, checked as Kubernetes would check it at launch: how long and
how wide a job runs (deadlines, replicas) and what each container asks for (resources, env).

Every value is checked where the user wrote it (``trialSpec``, not the rendered job), so the
field path points into their document; a value holding a ``${trialParameters.…}``
placeholder is only known per trial and is left to the cluster, except a count (replicas,
``numNodes``, a Job's ``parallelism`` and ``completions``, a JobSet's and a Ray cluster's):
the server itself loops over a count (a trial's processes, a TrainJob's pods), so a
placeholder there must be the whole value and reference a parameter whose every value is an
integer within the limit, and no key on the way to a count may hold one (it could render
into a count's name). A rendered job's counts are checked again when its trial launches
(``count_errors``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Any

from katib.errors import FieldError

from ._limits import Limits
from ._models import ParameterSpec
from ._quantity import EXAMPLES, parse_quantity
from ._template import PLACEHOLDER

GPU_KEY = "nvidia.com/gpu"
REPLICA_TYPE = re.compile(r"[A-Za-z][A-Za-z0-9]{0,62}")  # Kubeflow's replica types: Master, Worker, PS, …
SOLE_PLACEHOLDER = re.compile(r"\$\{trialParameters\.([^}]*)\}")
INTEGER = re.compile(r"-?[0-9]+")  # a count as a parameter's value renders it
# The counts each kind holds, as (field, least value).
JOB_COUNTS = (("parallelism", 0), ("completions", 0))  # a batch Job's; a JobSet's replicated job's
REPLICA_COUNTS = (("replicas", 0),)  # a Kubeflow replica spec's; a JobSet's replicated job's
RAY_COUNTS = (("replicas", 0), ("minReplicas", 0), ("maxReplicas", 0), ("numOfHosts", 1))  # a Ray worker group's
# Where each Ray kind keeps its cluster (the mapping holding workerGroupSpecs), under spec.
RAY_CLUSTERS = (("RayCluster", None), ("RayJob", "rayClusterSpec"), ("RayService", "rayClusterConfig"))


def workload_errors(trial_spec: dict[str, Any], path: str, limits: Limits,
                    parameters: Mapping[str, ParameterSpec] | None = None) -> list[FieldError]:
    """Every rule the workload ``trial_spec`` (at ``path``) breaks. ``parameters``: the
    experiment parameter each trial parameter references, by the trial parameter's name
    (what a count's placeholder may take)."""
    errors = _placeholder_keys(trial_spec, path)
    spec = trial_spec.get("spec")
    if isinstance(spec, dict):
        sp = f"{path}.spec"
        errors += _deadline(spec, sp)
        if isinstance(spec.get("runPolicy"), dict):  # Kubeflow training jobs
            errors += _deadline(spec["runPolicy"], f"{sp}.runPolicy")
        for key, replica_specs in spec.items():
            if str(key).endswith("ReplicaSpecs") and isinstance(replica_specs, dict):
                for role in replica_specs:
                    if not REPLICA_TYPE.fullmatch(str(role)):
                        errors.append(FieldError(f"{sp}.{key}", f"a replica type must be a word of letters and digits, "
                                                 f"at most 63 (Master, Worker, Chief, PS, Evaluator; got {str(role)[:80]!r})"))
        for field, value, least in count_fields(trial_spec):
            errors += _count(value, f"{path}.{field}", limits, least, parameters or {})
    if trial_spec.get("kind") == "TrainJob" and isinstance(spec, dict):
        errors += _trainjob(spec, f"{path}.spec")
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


def count_fields(job: Any) -> Iterator[tuple[str, Any, int]]:
    """Every count of the job (a ``trialSpec``, or a trial's rendered ``runSpec``) that the
    server loops over or hands to a cluster, as (its path in ``job``, its value, its least
    value): a Job's ``parallelism`` and ``completions``, each replica spec's ``replicas``,
    a TrainJob's ``trainer.numNodes``, a JobSet's replicated jobs' ``replicas`` and their
    Job's ``parallelism`` and ``completions``, a Ray worker group's ``replicas``,
    ``minReplicas``, ``maxReplicas`` and ``numOfHosts`` (RayCluster, RayJob, RayService)."""
    for path, owner, counts in _count_owners(job):
        for field, least in counts:
            if field in owner:
                yield f"{path}.{field}", owner[field], least


def _count_owners(job: Any) -> Iterator[tuple[str, dict[str, Any], tuple[tuple[str, int], ...]]]:
    """Each mapping on the way from ``job`` to one of its counts, as (its path, itself, the
    counts it holds). A kind that a placeholder decides may be any kind: every kind's
    counts are its counts."""
    if not isinstance(job, dict):
        return
    yield "", job, ()
    spec = job.get("spec")
    if not isinstance(spec, dict):
        return
    kind = job.get("kind")

    def of(name: str) -> bool:
        return kind == name or _unknown(kind)

    yield "spec", spec, JOB_COUNTS if of("Job") else ()
    for key, replica_specs in spec.items():
        if str(key).endswith("ReplicaSpecs") and isinstance(replica_specs, dict):
            for role, rs in replica_specs.items():
                if isinstance(rs, dict):
                    yield f"spec.{key}.{str(role)[:80]}", rs, REPLICA_COUNTS
    if of("TrainJob") and isinstance(spec.get("trainer"), dict):
        yield "spec.trainer", spec["trainer"], (("numNodes", 1),)
    if of("JobSet"):
        for i, replicated in _mappings(spec.get("replicatedJobs")):
            rp = f"spec.replicatedJobs[{i}]"
            yield rp, replicated, REPLICA_COUNTS
            template = replicated.get("template")
            if isinstance(template, dict):
                yield f"{rp}.template", template, ()
                if isinstance(template.get("spec"), dict):
                    yield f"{rp}.template.spec", template["spec"], JOB_COUNTS
    for ray_kind, field in RAY_CLUSTERS:
        cluster, cp = (spec, "spec") if field is None else (spec.get(field), f"spec.{field}")
        if not of(ray_kind) or not isinstance(cluster, dict):
            continue
        if field is not None:
            yield cp, cluster, ()
        for i, group in _mappings(cluster.get("workerGroupSpecs")):
            yield f"{cp}.workerGroupSpecs[{i}]", group, RAY_COUNTS


def _mappings(items: Any) -> Iterator[tuple[int, dict[str, Any]]]:
    """The mappings of a list, with their indexes."""
    if isinstance(items, list):
        yield from ((i, item) for i, item in enumerate(items) if isinstance(item, dict))


def _placeholder_keys(trial_spec: dict[str, Any], path: str) -> list[FieldError]:
    """A key that a placeholder decides, on the way to a count: it could render into the
    count's name (``{"${trialParameters.f}": "${trialParameters.n}"}`` with ``f`` taking
    ``replicas``), where the count's own check never looked."""
    errors = []
    for owner_path, owner, _ in _count_owners(trial_spec):
        for key in owner:
            if _unknown(key):
                errors.append(FieldError(
                    ".".join(filter(None, (path, owner_path, str(key)[:80]))),
                    "a key here must not hold a ${trialParameters.…} placeholder: it is on the way to a count "
                    "(replicas, numNodes, parallelism, completions), which is checked as written"))
    return errors


def _count_rule(least: int) -> str:
    return "a positive integer" if least >= 1 else "a non-negative integer"


def _count(value: Any, path: str, limits: Limits, least: int, parameters: Mapping[str, ParameterSpec]) -> list[FieldError]:
    if _unknown(value):
        return _placeholder_count(value, path, limits, least, parameters)
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        return [FieldError(path, f"must be {_count_rule(least)} (got {value!r})")]
    problem = limits.exceeded("replicas", value)
    return [FieldError(path, problem)] if problem else []


def _placeholder_count(value: str, path: str, limits: Limits, least: int,
                       parameters: Mapping[str, ParameterSpec]) -> list[FieldError]:
    """A count that a trial's assignment decides: refused unless every value the
    referenced parameter can take is an integer from ``least`` to the replica limit."""
    rule = (f"every value must be an integer from {least} to {limits.replicas} "
            f"(the server's limit; raise it with {limits.env_var('replicas')})")
    m = SOLE_PLACEHOLDER.fullmatch(value)
    if m is None:
        return [FieldError(path, f"may hold a ${{trialParameters.…}} placeholder only as its whole value "
                                 f"(got {value[:80]!r}): {rule}")]
    name = m.group(1)[:80]
    p = parameters.get(m.group(1))
    if p is None:
        return [FieldError(path, f"${{trialParameters.{name}}} must reference an int, discrete or categorical "
                                 f"parameter, not a metadata key or a NAS value: {rule}")]
    span = integer_span(p)
    if span is None:
        return [FieldError(path, f"${{trialParameters.{name}}} takes parameter {p.name}'s values, not all integers: {rule}")]
    lo, hi = span
    if lo < least or hi > limits.replicas:
        return [FieldError(path, f"${{trialParameters.{name}}} takes parameter {p.name}'s values, from {lo} to {hi}: {rule}")]
    return []


def integer_span(p: ParameterSpec) -> tuple[int, int] | None:
    """The least and the greatest value of parameter ``p`` when every value it takes is an
    integer (an int parameter's range; a discrete or categorical list of integers), else None."""
    fs = p.feasible_space
    if fs is None:
        return None
    if p.parameter_type == "int":
        texts = [fs.min, fs.max]
    elif p.parameter_type in ("discrete", "categorical"):
        texts = list(fs.list_ or [])
    else:
        return None
    numbers = [count_value(t) for t in texts]
    if not numbers or None in numbers:
        return None
    known = [n for n in numbers if n is not None]
    return min(known), max(known)


def count_value(value: Any) -> int | None:
    """A rendered count as a number: an integer, or a placeholder's integer text; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and INTEGER.fullmatch(value.strip()):
        try:
            return int(value)
        except ValueError:  # past Python's 4,300 digits
            return None
    return None


def count_errors(run_spec: Any, limits: Limits, path: str = "trialSpec") -> list[FieldError]:
    """The counts of a trial's rendered job (its ``runSpec``) that are not integers within
    the replica limit: checked when the trial launches, whatever admitted its template
    (an experiment stored before placeholders were checked, a parameter's value from
    outside its feasible space)."""
    errors = []
    for field, value, least in count_fields(run_spec):
        n = count_value(value)
        if n is None or n < least:
            errors.append(FieldError(f"{path}.{field}", f"must be {_count_rule(least)} (got {str(value)[:80]!r})"))
        elif problem := limits.exceeded("replicas", n):
            errors.append(FieldError(f"{path}.{field}", problem))
    return errors


def _trainjob(spec: dict[str, Any], sp: str) -> list[FieldError]:
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


__all__ = ["count_errors", "count_fields", "count_value", "integer_span", "workload_errors"]
