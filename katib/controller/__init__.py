"""The experiment controller: admission, the reconcile loop, status arithmetic.

Names are imported on first use (PEP 562), so ``katib validate``, which needs only
admission, never loads the store, the executors or the loop.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

_WHERE = {
    "admit": "_admission", "admit_remote": "_admission", "runnable_errors": "_admission",
    "Counts": "_arithmetic", "end_condition": "_arithmetic", "goal_reached": "_arithmetic",
    "trials_to_create": "_arithmetic",
    "AskTell": "_ask_tell",
    "Controller": "_controller", "edit_again_while_stale": "_controller",
    "EDITABLE": "_run", "ExperimentRun": "_run", "is_completed": "_status",
    "ExperimentManager": "_manager", "mark_stopped": "_manager", "end_left_trials": "_manager",
    "trial_log": "_logs", "trial_log_since": "_logs", "trial_log_size": "_logs",
    "experiment_phase": "_status", "metric_strategies": "_status", "metric_value": "_status",
    "shown_value": "_status", "rfc3339": "_status", "LAST_OUTPUT": "_status", "no_result_note": "_status",
    "FINAL_TRIAL_STATES": "_status", "result_note": "_status", "set_condition": "_status",
}

if TYPE_CHECKING:
    from ._admission import admit, admit_remote, runnable_errors
    from ._arithmetic import Counts, end_condition, goal_reached, trials_to_create
    from ._ask_tell import AskTell
    from ._controller import Controller, edit_again_while_stale
    from ._logs import trial_log, trial_log_since, trial_log_size
    from ._manager import ExperimentManager, end_left_trials, mark_stopped
    from ._run import EDITABLE, ExperimentRun
    from ._status import (
        FINAL_TRIAL_STATES,
        LAST_OUTPUT,
        experiment_phase,
        is_completed,
        metric_strategies,
        metric_value,
        no_result_note,
        result_note,
        rfc3339,
        set_condition,
        shown_value,
    )


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "FINAL_TRIAL_STATES",
    "LAST_OUTPUT",
    "AskTell",
    "EDITABLE",
    "Controller",
    "Counts",
    "ExperimentManager",
    "ExperimentRun",
    "admit",
    "admit_remote",
    "edit_again_while_stale",
    "end_condition",
    "end_left_trials",
    "experiment_phase",
    "goal_reached",
    "mark_stopped",
    "is_completed",
    "metric_strategies",
    "metric_value",
    "no_result_note",
    "result_note",
    "rfc3339",
    "set_condition",
    "runnable_errors",
    "shown_value",
    "trial_log",
    "trial_log_since",
    "trial_log_size",
    "trials_to_create",
]
