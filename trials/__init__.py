"""Where trials run and how their metrics are read.

Executors (``LocalExecutor``; Ray and Kubernetes follow the same ``Executor`` seam) and
the metrics ``Collector`` (StdOut, File TEXT/JSON, Push).
"""

from ._collector import DEFAULT_FILTER, Collector, Sample, parse_json, parse_text, parse_time
from ._executor import Adoption, Deferred, Executor, LaunchError, RunState, TrialJob
from ._local import LocalExecutor
from ._process import owner_alive, owner_id
from ._resources import Inventory, Ledger, Resources, discover_gpus

__all__ = [
    "DEFAULT_FILTER",
    "Adoption",
    "Collector",
    "Deferred",
    "Executor",
    "Inventory",
    "LaunchError",
    "Ledger",
    "LocalExecutor",
    "Resources",
    "RunState",
    "Sample",
    "TrialJob",
    "discover_gpus",
    "owner_alive",
    "owner_id",
    "parse_json",
    "parse_text",
    "parse_time",
]
