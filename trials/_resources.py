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
        res = container.get("resources") or {}
        quantities = {**(res.get("requests") or {}), **(res.get("limits") or {})}
        return cls(
            cpu=parse_cpu(quantities["cpu"]) if "cpu" in quantities else 0.0,
            memory=parse_memory(quantities["memory"]) if "memory" in quantities else 0,
            gpu=math.ceil(parse_quantity(quantities[GPU_KEY])) if quantities.get(GPU_KEY) is not None else 0,
        )


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

    def to_dict(self) -> dict[str, Any]:
        return {"cpu": self.resources.cpu, "memory": self.resources.memory, "gpus": self.gpus}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Allocation:
        return cls(Resources(cpu=float(data.get("cpu") or 0), memory=int(data.get("memory") or 0),
                             gpu=len(data.get("gpus") or [])), [str(g) for g in data.get("gpus") or []])


class NoCapacity(Exception):
    """Not now: the trial waits for running trials to free what it needs."""


class Ledger:
    """Who holds what. ``take`` raises ``NoCapacity`` (wait) or ``ValueError`` (never)."""

    def __init__(self, inventory: Inventory | None = None) -> None:
        self.inventory = inventory or Inventory()
        self._free_gpus = list(self.inventory.gpus)
        self._cpu = 0.0
        self._memory = 0
        self._lock = threading.Lock()

    def take(self, need: Resources) -> Allocation:
        inv = self.inventory
        if need.gpu > len(inv.gpus):
            raise ValueError(f"the trial needs {need.gpu} GPU(s) and this machine has {len(inv.gpus)} "
                             "(set KATIB_GPUS to the GPUs trials may use)")
        if need.cpu > inv.cpus:
            raise ValueError(f"the trial needs {need.cpu:g} CPUs and this machine has {inv.cpus:g}")
        if inv.memory and need.memory > inv.memory:
            raise ValueError(f"the trial needs {need.memory / 2**30:.1f} GiB of memory and this machine has {inv.memory / 2**30:.1f}")
        with self._lock:
            if (need.gpu > len(self._free_gpus) or self._cpu + need.cpu > inv.cpus + 1e-9
                    or (inv.memory and self._memory + need.memory > inv.memory)):
                raise NoCapacity()
            gpus, self._free_gpus = self._free_gpus[:need.gpu], self._free_gpus[need.gpu:]
            self._cpu += need.cpu
            self._memory += need.memory
        return Allocation(need, gpus)

    def hold(self, allocation: Allocation) -> None:
        """Count what a running trial already has (one a restarted controller adopts):
        its GPUs are given to no other trial until it gives them back."""
        with self._lock:
            self._free_gpus = [g for g in self._free_gpus if g not in allocation.gpus]
            self._cpu += allocation.resources.cpu
            self._memory += allocation.resources.memory

    def give_back(self, allocation: Allocation) -> None:
        with self._lock:
            self._free_gpus = sorted(set(self._free_gpus) | set(allocation.gpus),
                                     key=lambda g: self.inventory.gpus.index(g))
            self._cpu = max(0.0, self._cpu - allocation.resources.cpu)
            self._memory = max(0, self._memory - allocation.resources.memory)
