"""Where trials run and how their metrics are read.

Executors (``LocalExecutor``; Ray and Kubernetes follow the same ``Executor`` seam) and
the metrics ``Collector`` (StdOut, File TEXT/JSON, Push).
"""

from typing import TYPE_CHECKING, Any

from ._collector import DEFAULT_FILTER, Collector, Sample, parse_json, parse_text, parse_time
from ._executor import Adoption, Deferred, Executor, LaunchError, RunState, TrialJob, read_handle
from ._local import LocalExecutor, kill_left, left_running, release_reserved, reserve_running
from ._process import owner_alive, owner_id, owner_text
from ._registry import (
    ExecutorOptions,
    executor_class,
    executor_factory,
    executor_names,
    trial_log_since,
    trial_log_size,
    trial_logs,
    unknown_executor,
)
from ._resources import Inventory, Ledger, Resources, discover_gpus, parse_quota
from ._sources import Source, SourceContext, collector_kinds

# Executors whose extras may be missing, and the sandbox, load on first use (PEP 562).
_LAZY = {"RayExecutor": ("_ray", "RayExecutor"), "KubernetesExecutor": ("_kubernetes", "KubernetesExecutor"),
         "Sandbox": ("_sandbox", "Sandbox"), "sandbox_problem": ("_sandbox", "problem"),
         "store_files": ("_sandbox", "store_files"), "SIDECAR_KINDS": ("_sidecar", "SIDECAR_KINDS"),
         "home_folder_problem": ("_sandbox", "home_folder_problem")}


if TYPE_CHECKING:
    from ._kubernetes import KubernetesExecutor
    from ._ray import RayExecutor
    from ._sandbox import Sandbox, home_folder_problem, store_files
    from ._sandbox import problem as sandbox_problem
    from ._sidecar import SIDECAR_KINDS


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    module, attr = _LAZY[name]
    return getattr(import_module(f"{__name__}.{module}"), attr)

__all__ = [
    "KubernetesExecutor",
    "RayExecutor",
    "SIDECAR_KINDS",
    "Sandbox",
    "sandbox_problem",
    "store_files",
    "home_folder_problem",
    "DEFAULT_FILTER",
    "Adoption",
    "Collector",
    "Deferred",
    "Executor",
    "ExecutorOptions",
    "Inventory",
    "LaunchError",
    "Ledger",
    "LocalExecutor",
    "kill_left",
    "read_handle",
    "left_running",
    "Resources",
    "parse_quota",
    "release_reserved",
    "reserve_running",
    "RunState",
    "Sample",
    "Source",
    "SourceContext",
    "TrialJob",
    "collector_kinds",
    "discover_gpus",
    "executor_class",
    "executor_factory",
    "executor_names",
    "unknown_executor",
    "owner_alive",
    "owner_id",
    "owner_text",
    "parse_json",
    "parse_text",
    "parse_time",
    "trial_log_since",
    "trial_log_size",
    "trial_logs",
]
