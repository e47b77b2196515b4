"""The trial-count arithmetic and end conditions, table-driven like Katib's controller tests."""

from __future__ import annotations

import pytest

from katib.controller import Counts, end_condition, goal_reached, trials_to_create


@pytest.mark.parametrize(
    ("parallel", "max_trials", "counts", "want"),
    [
        (3, 12, Counts(), 3),                                    # start: fill the parallel slots
        (3, 12, Counts(running=2), 1),                           # one slot free
        (3, 12, Counts(running=3), 0),                           # all busy
        (3, 12, Counts(succeeded=10, running=1), 1),             # only 2 left of the budget, 1 active
        (3, 12, Counts(succeeded=10, running=2), 0),
        (3, 12, Counts(succeeded=12), 0),                        # budget spent
        (3, 4, Counts(succeeded=2, failed=1, running=1), 0),     # failures use the budget too
        (2, None, Counts(succeeded=100, running=1), 1),          # no max: parallelism alone
        (3, 12, Counts(running=5), 0),                           # parallelism lowered: never negative
        (3, 12, Counts(pending=1, running=1, killed=3, early_stopped=2, metrics_unavailable=1), 1),
    ],
)
def test_trials_to_create(parallel, max_trials, counts, want):
    assert trials_to_create(parallel, max_trials, counts) == want


@pytest.mark.parametrize(
    ("best", "goal", "maximize", "reached"),
    [(0.99, 0.99, True, True), (0.98, 0.99, True, False), (0.1, 0.1, False, True),
     (0.2, 0.1, False, False), (None, 0.1, False, False), (0.5, None, True, False)],
)
def test_goal_reached(best, goal, maximize, reached):
    assert goal_reached(best, goal, maximize) is reached


@pytest.mark.parametrize(
    ("counts", "max_trials", "max_failed", "goal", "exhausted", "expected"),
    [
        (Counts(succeeded=1, running=2), 10, 3, True, False, ("Succeeded", "ExperimentGoalReached")),
        # goal first, even when failures are also at the limit
        (Counts(succeeded=1, failed=3), 10, 3, True, False, ("Succeeded", "ExperimentGoalReached")),
        (Counts(failed=2, metrics_unavailable=1), 10, 3, False, False, ("Failed", "ExperimentFailed")),
        (Counts(failed=2), 10, 3, False, False, None),
        (Counts(succeeded=1), 10, 0, False, False, None),          # 0 allowed failures, none yet
        (Counts(failed=1), 10, 0, False, False, ("Failed", "ExperimentFailed")),
        (Counts(succeeded=8, killed=1, early_stopped=1), 10, 3, False, False, ("Succeeded", "ExperimentMaxTrialsReached")),
        (Counts(succeeded=9, running=1), 10, 3, False, False, None),
        (Counts(succeeded=4), 10, 3, False, True, ("Succeeded", "ExperimentSuggestionEndReached")),
        (Counts(succeeded=4, running=1), 10, 3, False, True, None),  # wait for the running one
        (Counts(succeeded=1000), None, None, False, False, None),    # no limits: runs on
    ],
)
def test_end_condition(counts, max_trials, max_failed, goal, exhausted, expected):
    assert end_condition(counts, max_trials, max_failed, goal, exhausted) == expected
