"""The Kubeflow SDK's unreleased ``report_metrics(metrics, *, step, epoch, timestamp)`` prints
one JSON object a line with string values (issue 13); Katib's default collector (StdOut with
its default filter) reads those lines, so a trial written for the new SDK reports unchanged."""

from __future__ import annotations

import json

import pytest

from katib.controller import Controller, admit
from tests.conftest import experiment, python_command
from trials._collector import ZERO_TIME, Collector, parse_time


def report_metrics(metrics: dict, *, step=None, epoch=None, timestamp=None) -> str:
    """The line the SDK's helper prints: every value a string."""
    line = {k: str(v) for k, v in metrics.items()}
    for key, value in (("step", step), ("epoch", epoch), ("timestamp", timestamp)):
        if value is not None:
            line[key] = str(value)
    return json.dumps(line)


def test_the_default_collector_reads_report_metrics_lines(tmp_path):
    out = tmp_path / "trial.log"
    out.write_text("\n".join([
        "starting",
        report_metrics({"loss": 0.5, "accuracy": 0.7}, step=1, epoch=0, timestamp="2026-01-02T03:04:05Z"),
        report_metrics({"loss": 0.25}, step=2),
        json.dumps({"metrics": {"loss": "0.125"}, "step": "3"}),
        '{"loss": "not a number", "other": "1"}',
        "{not json}",
        "loss=0.1",
    ]) + "\n")
    samples = Collector("StdOut", {"loss", "accuracy", "step"}, out).collect(final=True)
    assert [(s.metric, s.value) for s in samples] == [
        ("loss", "0.5"), ("accuracy", "0.7"), ("loss", "0.25"), ("loss", "0.125"), ("loss", "0.1")]
    assert samples[0].time == parse_time("2026-01-02T03:04:05Z") and samples[2].time == ZERO_TIME
    # A custom filter is Katib's StdOut collector exactly: JSON lines are not its metrics.
    custom = Collector("StdOut", {"loss"}, out, filters=[r"([\w|-]+)\s*=\s*([+-]?\d*(\.\d+)?([Ee][+-]?\d+)?)\s*$"])
    assert [(s.metric, s.value) for s in custom.collect(final=True)] == [("loss", "0.1")]


def test_a_trial_that_reports_with_the_sdks_helper_has_its_objective(sqlite_store, tmp_path):
    code = ("import json, datetime\n"
            "for step in range(3):\n"
            "    print(json.dumps({'loss': str(${trialParameters.x} / (step + 1)), 'step': str(step),"
            " 'timestamp': datetime.datetime.now(datetime.timezone.utc).isoformat()}))")
    doc = experiment(maxTrialCount=2, parallelTrialCount=2, command=python_command(code),
                     objective={"type": "minimize", "objectiveMetricName": "loss"})
    ctl = Controller(sqlite_store, runs_root=tmp_path / "runs", tick=0.05)
    rec, _ = ctl.submit(admit(doc), tmp_path)
    ctl.run(rec.namespace, rec.name)
    for t in sqlite_store.list_trials(rec.id):
        assert t.state == "Succeeded", t.conditions
        x = float(t.parameters()["x"])
        assert t.observation is not None and float(t.observation["loss"]["latest"]) == pytest.approx(x / 3)
        assert float(t.observation["loss"]["min"]) == pytest.approx(x / 3)
