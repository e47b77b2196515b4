"""The experiment controller: admission, the reconcile loop, status arithmetic."""

from ._admission import admit, admit_remote, runnable_errors
from ._arithmetic import Counts, end_condition, goal_reached, trials_to_create
from ._ask_tell import AskTell
from ._controller import EDITABLE, Controller, ExperimentRun, is_completed
from ._manager import ExperimentManager
from ._status import experiment_phase, metric_strategies, metric_value, shown_value

__all__ = [
    "AskTell",
    "EDITABLE",
    "Controller",
    "Counts",
    "ExperimentManager",
    "ExperimentRun",
    "admit",
    "admit_remote",
    "end_condition",
    "experiment_phase",
    "goal_reached",
    "is_completed",
    "metric_strategies",
    "metric_value",
    "runnable_errors",
    "shown_value",
    "trials_to_create",
]
