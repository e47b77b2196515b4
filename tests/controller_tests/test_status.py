"""Status arithmetic: metric strategies, the value each screen shows."""

from __future__ import annotations


def test_one_value_per_metric_the_strategy_picks():
    """Katib's metricStrategies, and its default (min when minimizing, max when maximizing)
    for every metric without one; the value every screen shows is the one it picks."""
    from katib.controller import metric_strategies, shown_value

    objective = {"type": "minimize", "objectiveMetricName": "loss", "additionalMetricNames": ["acc", "step"],
                 "metricStrategies": [{"name": "step", "value": "latest"}]}
    assert metric_strategies(objective) == {"loss": "min", "acc": "min", "step": "latest"}
    assert metric_strategies({"type": "maximize", "objectiveMetricName": "acc"}) == {"acc": "max"}
    observation = {"loss": {"min": "0.2", "max": "0.7", "latest": "0.7"},
                   "step": {"min": "1", "max": "9", "latest": "5"}}
    strategies = metric_strategies(objective)
    assert shown_value(observation, "loss", strategies) == "0.2"
    assert shown_value(observation, "step", strategies) == "5"
    assert shown_value(observation, "acc", strategies) == ""  # never reported


def test_no_result_blames_the_failures_not_the_trials_the_end_killed():
    """Four trials killed when the experiment ended outnumbered the two that failed, and the
    note said the most common outcome was "Killed ... the experiment ended"."""
    from katib.controller._status import no_result_note
    from katib.spec import Condition
    from katib.store import TrialRecord

    def trial(i: int, state: str, reason: str, message: str) -> TrialRecord:
        return TrialRecord(id=i, experiment_id=1, name=f"t-{i}", state=state, assignments=[],
                           conditions=[Condition(type=state, status="True", reason=reason, message=message)])

    trials = [trial(1, "Failed", "TrialFailed", "exit code 3"), trial(2, "Failed", "TrialFailed", "exit code 3")]
    trials += [trial(i, "Killed", "TrialKilled", "the experiment ended (ExperimentFailed)") for i in range(3, 7)]
    note = no_result_note("loss", trials)
    assert note == ("no trial reported the objective metric 'loss'; most common outcome (2 of 6 trials, 4 killed): "
                    "Failed (TrialFailed): exit code 3")
    only_killed = no_result_note("loss", trials[2:])
    assert "(4 of 4 trials): Killed (TrialKilled)" in only_killed
