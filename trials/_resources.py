"""What a trial needs (CPU, memory, GPUs) and what this machine has, and the ledger that
hands GPUs to trials without ever giving one GPU to two trials at once.

A trial's needs come from its primary container (``resources.limits``, else
``requests``: ``cpu``, ``memory``, ``nvidia.com/gpu``), the process that runs here. The machine's GPUs come from
``$KATIB_GPUS`` (``0,1,3`` or ``none``), else ``$CUDA_VISIBLE_DEVICES``, else
``nvidia-smi``; CPUs and memory from the operating system. A trial that does not fit now
waits (it stays pending); one that could never fit fails at once, saying why.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import threading
from dataclasses import dataclass, field
from typing import Any

from katib.spec import parse_quantity

GPU_KEY = "nvidia.com/gpu"


def parse_cpu(value: Any) -> float:
    """CPUs of a Kubernetes quantity (``500m`` is half a CPU); ``ValueError`` if it is none."""
    return float(parse_quantity(value))


def parse_memory(value: Any) -> int:
    """Bytes of a Kubernetes quantity (``1.5Gi``, ``129e6``, ``2Pi``), rounded up as Kubernetes does."""
    return math.ceil(parse_quantity(value))


@dataclass(frozen=True)
class Resources:
    """A trial's needs; zero means "no request" (nothing is reserved for it)."""

    cpu: float = 0.0
    memory: int = 0
    gpu: int = 0

    def __add__(self, other: Resources) -> Resources:
        return Resources(self.cpu + other.cpu, self.memory + other.memory, self.gpu + other.gpu)

    @classmethod
    def of_container(cls, container: dict[str, Any]) -> Resources:
        """``ValueError`` for a quantity that is none, or negative: a trial's rendered
        request (``${trialParameters.c}`` of a parameter with a negative range) is checked
        here, at its launch; admission checks only the written ones. A negative CPU count
        taken and given back left the ledger's total past the machine for good (no trial of
        any tenant started again), and a GPU count of -1 took all the GPUs but one."""
        res = container.get("resources") or {}
        quantities = {**(res.get("requests") or {}), **(res.get("limits") or {})}
        def read(key: str, parse: Any, given: bool) -> Any:
            if not given:
                return 0
            try:
                value = parse(quantities[key])
            except ValueError as exc:  # a rendered ${trialParameters.c} is not checked before
                raise ValueError(f"resources: {key}: {exc}") from None
            if value < 0:
                raise ValueError(f"resources: {key} must not be negative (got {quantities[key]!r})")
            return value

        return cls(cpu=float(read("cpu", parse_cpu, "cpu" in quantities)),
                   memory=read("memory", parse_memory, "memory" in quantities),
                   gpu=read(GPU_KEY, lambda v: math.ceil(parse_quantity(v)), quantities.get(GPU_KEY) is not None))


def discover_gpus() -> list[str]:
    """This machine's GPUs, as the ids ``CUDA_VISIBLE_DEVICES`` takes."""
    configured = os.environ.get("KATIB_GPUS")
    if configured is not None:
        return [] if configured.strip().lower() in ("", "none") else [g.strip() for g in configured.split(",") if g.strip()]
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [g.strip() for g in visible.split(",") if g.strip() and g.strip() != "-1"]
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=20, check=True).stdout
            return [line.strip() for line in out.splitlines() if line.strip()]
        except (OSError, subprocess.SubprocessError):
            return []
    return []


def _total_memory() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


@dataclass
class Inventory:
    """What this machine offers to trials."""

    cpus: float = field(default_factory=lambda: float(os.cpu_count() or 1))
    memory: int = field(default_factory=_total_memory)
    gpus: list[str] = field(default_factory=discover_gpus)


@dataclass
class Allocation:
    resources: Resources
    gpus: list[str]
    namespace: str | None = None  # whose quota it counts against (``Ledger.take``)

    def to_dict(self) -> dict[str, Any]:
        return {"cpu": self.resources.cpu, "memory": self.resources.memory, "gpus": self.gpus}

    @classmethod
    def from_dict(cls, data: dict[str, Any], namespace: str | None = None) -> Allocation:
        return cls(Resources(cpu=float(data.get("cpu") or 0), memory=int(data.get("memory") or 0),
                             gpu=len(data.get("gpus") or [])), [str(g) for g in data.get("gpus") or []], namespace)


def _said(r: Resources) -> str:
    """``r`` in words, leaving out what is zero or not bounded."""
    parts = []
    if 0 < r.cpu < float("inf"):
        parts.append(f"{r.cpu:g} CPUs")
    if 0 < r.memory < float("inf"):
        parts.append(f"{r.memory / 2**30:.1f} GiB")
    if 0 < r.gpu < float("inf"):
        parts.append(f"{r.gpu} GPUs")
    return ", ".join(parts)


def parse_quota(text: str, inventory: Inventory | None = None) -> Resources | None:
    """``katib server --namespace-quota``: ``none``; ``half`` (of this machine's CPUs and
    memory, and half its GPUs rounded up); or ``cpu=2,memory=8Gi,gpu=1`` (Kubernetes
    quantities; ``nvidia.com/gpu`` for ``gpu`` too; one not named is not limited).
    ``ValueError`` naming what is wrong."""
    text = text.strip()
    if text == "none":
        return None
    if text == "half":
        inv = inventory or Inventory()
        memory = inv.memory // 2 if inv.memory else float("inf")  # unknown here: not bounded, as the machine's is not
        return Resources(cpu=inv.cpus / 2, memory=memory, gpu=math.ceil(len(inv.gpus) / 2))  # type: ignore[arg-type]
    unlimited = float("inf")
    cpu, memory, gpu = unlimited, unlimited, unlimited
    seen: set[str] = set()
    for part in text.split(","):
        key, sep, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if key in seen or (key in ("gpu", GPU_KEY) and seen & {"gpu", GPU_KEY}):
            raise ValueError(f"{key!r} is given twice")
        seen.add(key)
        if not sep or not value:
            raise ValueError(f"{part.strip()!r}: write none, half, or NAME=QUANTITY[,NAME=QUANTITY] (cpu, memory, gpu)")
        if key not in ("cpu", "memory", "gpu", GPU_KEY):
            raise ValueError(f"{key!r} is not a resource a quota limits (cpu, memory, gpu)")
        try:
            if key == "cpu":
                cpu = parse_cpu(value)
            elif key == "memory":
                memory = parse_memory(value)
            else:
                gpu = int(value)
        except (ValueError, ArithmeticError) as exc:
            raise ValueError(f"{part.strip()!r}: {exc}") from None
        if (cpu if key == "cpu" else memory if key == "memory" else gpu) < 0:
            raise ValueError(f"{part.strip()!r}: must not be negative")
    return Resources(cpu=cpu, memory=memory, gpu=gpu)  # type: ignore[arg-type]


class NoCapacity(Exception):
    """Not now: the trial waits for running trials to free what it needs."""


class Ledger:
    """Who holds what. ``take`` raises ``NoCapacity`` (wait) or ``ValueError`` (never).

    With a ``quota`` (``katib server --namespace-quota``; half the machine by default with
    ``--auth``), what one namespace's trials hold at once is bounded too, as a Kubernetes
    ``ResourceQuota`` bounds it: one tenant's trials that requested the whole machine and
    never ended kept every other tenant's pending for ever."""

    def __init__(self, inventory: Inventory | None = None) -> None:
        self.inventory = inventory or Inventory()
        self._free_gpus = list(self.inventory.gpus)
        self._cpu = 0.0
        self._memory = 0
        self._held: dict[str, Resources] = {}  # namespace -> what its trials hold
        self._reserved: dict[str, Allocation] = {}  # trials a starting server will adopt (``reserve``)
        self._lock = threading.Lock()

    def take(self, need: Resources, namespace: str | None = None, quota: Resources | None = None) -> Allocation:
        if need.cpu < 0 or need.memory < 0 or need.gpu < 0:
            raise ValueError(f"a trial's resources must not be negative (got {need})")
        inv = self.inventory
        if need.gpu > len(inv.gpus):
            raise ValueError(f"the trial needs {need.gpu} GPU(s) and this machine has {len(inv.gpus)} "
                             "(set KATIB_GPUS to the GPUs trials may use)")
        if need.cpu > inv.cpus:
            raise ValueError(f"the trial needs {need.cpu:g} CPUs and this machine has {inv.cpus:g}")
        if inv.memory and need.memory > inv.memory:
            raise ValueError(f"the trial needs {need.memory / 2**30:.1f} GiB of memory and this machine has {inv.memory / 2**30:.1f}")
        if quota is not None and namespace is not None:
            for what, wanted, bound, say in (("CPUs", need.cpu, quota.cpu, f"{need.cpu:g}"),
                                             ("memory", need.memory, quota.memory, f"{need.memory / 2**30:.1f} GiB"),
                                             ("GPUs", need.gpu, quota.gpu, f"{need.gpu}")):
                if wanted > bound + 1e-9:
                    limit = f"{bound / 2**30:.1f} GiB" if what == "memory" else f"{bound:g}"
                    raise ValueError(f"the trial needs {say} {what} and a namespace's trials may hold {limit} at once "
                                     "on this server (katib server --namespace-quota)")
        with self._lock:
            if (need.gpu > len(self._free_gpus) or self._cpu + need.cpu > inv.cpus + 1e-9
                    or (inv.memory and self._memory + need.memory > inv.memory)):
                raise NoCapacity(f"waiting for running trials to free what it asks ({_said(need)}) on this machine")
            if quota is not None and namespace is not None:
                held = self._held.get(namespace, Resources()) + need
                if held.cpu > quota.cpu + 1e-9 or held.memory > quota.memory or held.gpu > quota.gpu:
                    # its namespace's own trials must end first
                    raise NoCapacity(f"waiting for its namespace's quota: {namespace}'s running trials hold "
                                     f"{_said(self._held.get(namespace, Resources())) or 'nothing'} of "
                                     f"{_said(quota)} (katib server --namespace-quota), and it asks {_said(need)}")
            allocation = Allocation(need, self._free_gpus[:need.gpu], namespace)
            self._add(allocation, 1)
        return allocation

    def _count(self, namespace: str | None, resources: Resources, sign: int) -> None:
        if namespace is None:
            return
        held = self._held.get(namespace, Resources())
        held = Resources(max(0.0, held.cpu + sign * resources.cpu), max(0, held.memory + sign * resources.memory),
                         max(0, held.gpu + sign * resources.gpu))
        if held == Resources():
            self._held.pop(namespace, None)
        else:
            self._held[namespace] = held

    def held(self, namespace: str) -> Resources:
        """What ``namespace``'s trials hold now."""
        with self._lock:
            return self._held.get(namespace, Resources())

    def hold(self, allocation: Allocation, key: str | None = None) -> None:
        """Count what a running trial already has (one a restarted controller adopts):
        its GPUs are given to no other trial until it gives them back. ``key``: the
        trial's reservation (``reserve``), which this takes over."""
        with self._lock:
            reserved = self._reserved.pop(key, None) if key is not None else None
            if reserved is not None:
                self._add(reserved, -1)
            self._add(allocation, 1)

    def give_back(self, allocation: Allocation) -> None:
        with self._lock:
            self._add(allocation, -1)

    def reserve(self, key: str, allocation: Allocation) -> None:
        """Count a running trial that a starting server will adopt, before any
        experiment's controller runs: each experiment's controller starts on its own, and
        one launched a waiting trial on the GPU (or into the quota) of another's running
        trial not adopted yet. ``hold`` with the key takes it over; ``release`` ends it."""
        with self._lock:
            if key not in self._reserved:
                self._reserved[key] = allocation
                self._add(allocation, 1)

    def release(self, prefix: str) -> None:
        """End the reservations whose key starts with ``prefix`` (what an experiment's
        controller did not take over once it has adopted what it could)."""
        with self._lock:
            for key in [k for k in self._reserved if k.startswith(prefix)]:
                self._add(self._reserved.pop(key), -1)

    def _add(self, allocation: Allocation, sign: int) -> None:  # under the lock
        if sign > 0:
            self._free_gpus = [g for g in self._free_gpus if g not in allocation.gpus]
        else:
            self._free_gpus = sorted(set(self._free_gpus) | set(allocation.gpus), key=self.inventory.gpus.index)
        self._cpu = max(0.0, self._cpu + sign * allocation.resources.cpu)
        self._memory = max(0, self._memory + sign * allocation.resources.memory)
        self._count(allocation.namespace, allocation.resources, sign)
