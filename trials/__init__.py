"""Where trials run and how their metrics are read.

Executors (``LocalExecutor``; Ray and Kubernetes follow the same ``Executor`` seam) and
the metrics ``Collector`` (StdOut, File TEXT/JSON, Push).
"""

from ._collector import DEFAULT_FILTER, Collector, Sample, parse_json, parse_text, parse_time
from ._executor import Executor, LaunchError, RunState, TrialJob
from ._local import LocalExecutor
from ._process import owner_alive, owner_id

__all__ = [
    "DEFAULT_FILTER",
    "Collector",
    "Executor",
    "LaunchError",
    "LocalExecutor",
    "RunState",
    "Sample",
    "TrialJob",
    "owner_alive",
    "owner_id",
    "parse_json",
    "parse_text",
    "parse_time",
]
