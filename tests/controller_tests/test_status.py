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
