"""What a trial runs as on this machine: its processes (``Member``), each a container of the
rendered template as a command with its environment; several for a distributed job
(PyTorchJob, TFJob, XGBoostJob, MPIJob, a TrainJob), wired to one another on the loopback
as their operators would wire pods. The local, Ray and Slurm executors start these."""

from __future__ import annotations

import json
import os
import re
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from katib.runtimes import is_trainjob
from katib.spec import REPLICA_TYPE, Limits, count_value, find_containers

from ._executor import LaunchError, TrialJob
from ._resources import Resources
from ._trainjob import trainjob_members


def primary_container(run_spec: dict[str, Any], name: str) -> dict[str, Any]:
    for container in find_containers(run_spec):
        if container.get("name") == name:
            return container
    raise LaunchError(f"no container named {name!r} in the trial's job")


def command_of(container: dict[str, Any], path_map: dict[str, str]) -> list[str]:
    argv = [str(a) for a in (container.get("command") or []) + (container.get("args") or [])]
    if not argv:
        raise LaunchError(
            f"container {container.get('name')!r} has no command or args: the local executor "
            "runs the container's command and args on this machine (the image is not used)"
        )
    return [remap_paths(a, path_map) for a in argv]


def remap_paths(text: str, path_map: dict[str, str]) -> str:
    """Each of Katib's paths in ``text`` replaced, in one pass (a replacement is never
    replaced again), the longest path first where several start at one place."""
    if not path_map:
        return text
    pattern = "|".join(re.escape(old) for old in sorted(path_map, key=len, reverse=True))
    return re.sub(pattern, lambda m: path_map[m.group(0)], text)


def deadline_of(run_spec: dict[str, Any]) -> float | None:
    value = (run_spec.get("spec") or {}).get("activeDeadlineSeconds")
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


# What a clean environment keeps of the server's: where programs are, and the locale.
KEPT_VARIABLES = frozenset({"PATH", "LANG", "LANGUAGE", "TZ"})


def base_env(clean: bool) -> dict[str, str]:
    """The environment a trial starts from: this process's whole environment, or with
    ``clean`` only ``PATH``, the locale (``LANG``, ``LANGUAGE``, ``LC_*``) and ``TZ``, so
    no secret of the server's (a token, a cloud key, the store's URL) reaches a trial."""
    if not clean:
        return dict(os.environ)
    return {k: v for k, v in os.environ.items() if k in KEPT_VARIABLES or k.startswith("LC_")}


def trial_env(job: TrialJob, container: dict[str, Any], clean: bool = False) -> dict[str, str]:
    """The trial's environment: ``base_env(clean)``, this Python first on ``PATH``, the
    container's ``env``, then katib's ``KATIB_*`` variables; a clean one has ``HOME`` set
    to the trial's directory."""
    env = base_env(clean)
    if clean:
        env["HOME"] = str(job.trial_dir)
    python_bin = str(Path(sys.executable).parent)
    env["PATH"] = python_bin + os.pathsep + env.get("PATH", "")
    for item in container.get("env") or []:
        if isinstance(item, dict) and item.get("name") and "value" in item:
            env[str(item["name"])] = remap_paths(str(item["value"]), job.path_map)
    env.update(job.env)
    env.setdefault("PYTHONUNBUFFERED", "1")
    # A trial that asks for N CPUs gets N threads in its numeric libraries (as Ray does):
    # three parallel trials that each start one thread per core only slow each other down.
    try:
        cpus = Resources.of_container(container).cpu
    except ValueError as exc:  # a rendered quantity that is none, or negative: this trial fails, on any executor
        raise LaunchError(str(exc)) from None
    if cpus:
        for name in THREAD_VARIABLES:
            env.setdefault(name, str(max(1, int(cpus))))
    return env


THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


@dataclass
class Member:
    """One process of a trial: a replica's container, its command and environment."""

    replica: str
    container: dict[str, Any]
    argv: list[str]
    env: dict[str, str]
    log_name: str = "trial.log"
    resources: Resources = field(default_factory=Resources)


# Kubeflow training jobs: the replica specs field, and the replica types in rank order.
REPLICA_SPECS = {
    "pytorchReplicaSpecs": ("Master", "Worker"),
    "xgbReplicaSpecs": ("Master", "Worker"),
    "tfReplicaSpecs": ("Chief", "Master", "Worker", "PS", "Evaluator"),
}
MOST_REPLICA_TYPES = max(len(types) for types in REPLICA_SPECS.values())


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _replica_counts(field_name: str, replicas: dict[str, Any], order: list[Any]) -> dict[str, int]:
    """Each replica type's count (1 where unset or 0), checked before a process is made:
    a word for a type, an integer within ``KATIB_MAX_REPLICAS`` for a count (the run spec
    may have been stored before counts from placeholders were checked), and at most
    ``KATIB_MAX_REPLICAS`` times the most replica types Kubeflow has (TFJob's five) in all."""
    limits = Limits.current()
    counts: dict[str, int] = {}
    for replica_type in order:
        if not isinstance(replica_type, str) or not REPLICA_TYPE.fullmatch(replica_type):
            # It names the replica's log and exit files in the trial folder, opened by the server.
            raise LaunchError(f"{field_name}: replica type {str(replica_type)[:80]!r} is not a word of letters and "
                              "digits (Master, Worker, Chief, PS, Evaluator)")
        rspec = replicas[replica_type]
        raw = (rspec.get("replicas", 1) if isinstance(rspec, dict) else 1) or 1
        n = count_value(raw)
        problem = f"must be a non-negative integer (got {str(raw)[:80]!r})" if n is None or n < 0 else limits.exceeded("replicas", n)
        if problem:
            raise LaunchError(f"trialSpec.spec.{field_name}.{replica_type}.replicas: {problem}")
        assert n is not None
        counts[replica_type] = n
    most = limits.replicas * MOST_REPLICA_TYPES
    if sum(counts.values()) > most:
        raise LaunchError(f"trialSpec.spec.{field_name}: at most {most} replicas in all ({MOST_REPLICA_TYPES} replica types "
                          f"of at most {limits.replicas}; raise it with {limits.env_var('replicas')}), not {sum(counts.values())}")
    return counts


def replica_processes(job: TrialJob, clean_env: bool = False) -> list[Member]:
    """The processes a trial runs here: one for a plain job; one per node for a TrainJob
    (``_trainjob.py``); for a PyTorchJob, TFJob or
    XGBoostJob, one per replica with the environment its training operator would set
    (``MASTER_ADDR``, ``MASTER_PORT``, ``WORLD_SIZE``, ``RANK``; ``TF_CONFIG``). The
    primary replica (master or chief) comes first; its output is the trial's log.
    ``clean_env``: each starts from ``base_env(clean=True)``, not this process's environment."""
    if is_trainjob(job.run_spec):
        return trainjob_members(job, clean_env)
    spec = job.run_spec.get("spec") or {}
    field_name = next((k for k in REPLICA_SPECS if isinstance(spec.get(k), dict)), None)
    if field_name is None:
        if isinstance(spec.get("mpiReplicaSpecs"), dict):
            raise LaunchError("MPIJob trials need mpirun across pods: run them with the Kubernetes executor")
        container = primary_container(job.run_spec, job.primary_container)
        return [Member("main", container, command_of(container, job.path_map), trial_env(job, container, clean_env))]
    replicas = spec[field_name]
    order = [t for t in REPLICA_SPECS[field_name] if t in replicas] + [t for t in replicas if t not in REPLICA_SPECS[field_name]]
    counts = _replica_counts(field_name, replicas, order)
    members: list[Member] = []
    for replica_type in order:
        rspec = replicas[replica_type] or {}
        containers = find_containers(rspec.get("template") or {})
        if not containers:
            raise LaunchError(f"replica {replica_type} has no container")
        container = next((c for c in containers if c.get("name") == job.primary_container), containers[0])
        for index in range(counts[replica_type]):
            name = f"{replica_type.lower()}-{index}"
            members.append(Member(name, container, command_of(container, job.path_map), trial_env(job, container, clean_env),
                                  log_name="trial.log" if not members else f"{name}.log"))
    if field_name == "tfReplicaSpecs":
        tf_ports = [free_port() for _ in members]
        cluster: dict[str, list[str]] = {}
        for m, tf_port in zip(members, tf_ports, strict=True):
            cluster.setdefault(m.replica.rsplit("-", 1)[0], []).append(f"localhost:{tf_port}")
        for m in members:
            kind, task_index = m.replica.rsplit("-", 1)
            m.env["TF_CONFIG"] = json.dumps({"cluster": cluster, "task": {"type": kind, "index": int(task_index)},
                                             "environment": "cloud"})
    else:
        master_port = str(free_port())
        for rank, m in enumerate(members):
            m.env.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=master_port, WORLD_SIZE=str(len(members)),
                         RANK=str(rank), PET_MASTER_ADDR="127.0.0.1", PET_MASTER_PORT=master_port,
                         PET_NNODES=str(len(members)), PET_NODE_RANK=str(rank))
    return members
