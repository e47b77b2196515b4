"""The trial-count arithmetic and the end conditions, as pure functions (reference §5)."""

from __future__ import annotations

from dataclasses import dataclass

SUCCEEDED, FAILED = "Succeeded", "Failed"
GOAL_REACHED = "ExperimentGoalReached"
MAX_TRIALS_REACHED = "ExperimentMaxTrialsReached"
SUGGESTION_END_REACHED = "ExperimentSuggestionEndReached"
EXPERIMENT_FAILED = "ExperimentFailed"


@dataclass(frozen=True)
class Counts:
    """Trials by state, as the end conditions need them."""

    pending: int = 0
    running: int = 0
    succeeded: int = 0
    failed: int = 0
    killed: int = 0
    early_stopped: int = 0
    metrics_unavailable: int = 0

    @property
    def active(self) -> int:
        return self.pending + self.running

    @property
    def completed(self) -> int:
        return self.succeeded + self.failed + self.killed + self.early_stopped + self.metrics_unavailable

    @property
    def failures(self) -> int:
        return self.failed + self.metrics_unavailable


def trials_to_create(parallel: int, max_trials: int | None, counts: Counts) -> int:
    """``min(parallel, max − completed) − active``, never negative."""
    budget = parallel if max_trials is None else min(parallel, max_trials - counts.completed)
    return max(0, budget - counts.active)


def goal_reached(best: float | None, goal: float | None, maximize: bool) -> bool:
    if best is None or goal is None:
        return False
    return best >= goal if maximize else best <= goal


def end_condition(
    counts: Counts,
    max_trials: int | None,
    max_failed: int | None,
    goal_met: bool,
    exhausted: bool,
) -> tuple[str, str] | None:
    """``(condition, reason)`` when the experiment is over, checked in Katib's order."""
    if goal_met:
        return SUCCEEDED, GOAL_REACHED
    if max_failed is not None and counts.failures >= max_failed and counts.failures > 0:
        return FAILED, EXPERIMENT_FAILED
    if max_trials is not None and counts.completed >= max_trials:
        return SUCCEEDED, MAX_TRIALS_REACHED
    if exhausted and counts.active == 0:
        return SUCCEEDED, SUGGESTION_END_REACHED
    return None
