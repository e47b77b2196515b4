"""Metrics formats: TEXT with the default and custom filters, timestamps, JSON, Push."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest

from trials import DEFAULT_FILTER, Collector, parse_json, parse_text

NAMES = {"loss", "accuracy", "Validation-accuracy"}
DEFAULT = [re.compile(DEFAULT_FILTER)]


def test_default_filter_reads_name_value_pairs():
    samples = parse_text(["epoch 1: loss=0.3 accuracy = 0.91 other=5", "Validation-accuracy=9.5e-01"], NAMES, DEFAULT, now=7.0)
    assert [(s.metric, s.value) for s in samples] == [("loss", "0.3"), ("accuracy", "0.91"), ("Validation-accuracy", "9.5e-01")]
    assert all(s.time == 7.0 for s in samples)


@pytest.mark.parametrize("line", ["Score=-7.5e-05", "Score=+3", "Score=.5"])
def test_default_filter_number_forms(line):
    assert parse_text([line], {"Score"}, DEFAULT, now=0)[0].value == line.split("=")[1]


def test_unrequested_metrics_and_non_numbers_are_dropped():
    assert parse_text(["foo=1 loss=abc loss="], NAMES, DEFAULT, now=0) == []


def test_rfc3339_timestamp_at_line_start():
    samples = parse_text(["2026-01-02T03:04:05Z loss=0.5", "2026-01-02T03:04:06.5+00:00 loss=0.4"], NAMES, DEFAULT)
    expected = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp()
    assert [s.time for s in samples] == [expected, expected + 1.5]


def test_custom_filter():
    pattern = [re.compile(r"{metricName: ([\w|-]+), metricValue: ((-?\d+)(\.\d+)?)}")]
    lines = ["2026-01-02T03:04:05Z INFO {metricName: loss, metricValue: 0.2100}",
             "loss=9 is ignored by this filter"]
    samples = parse_text(lines, NAMES, pattern)
    assert [(s.metric, s.value) for s in samples] == [("loss", "0.2100")]


def test_a_custom_filter_that_captures_spaces_reads_the_trimmed_name():
    """Katib's file collector trims both captures (strings.TrimSpace): ``loss : 0.25`` read
    with ``(\\w+\\s*):\\s*([\\d.]+)`` is the metric ``loss``."""
    filters = [re.compile(r"(\w+\s*):\s*([\d.]+)"), re.compile(r"([\w ]+)=\s*([\d.]+)")]
    samples = parse_text(["loss : 0.25", "epoch 1, accuracy = 0.5"], NAMES, filters, now=0)
    assert [(s.metric, s.value) for s in samples] == [("loss", "0.25"), ("accuracy", "0.5")]


def test_json_lines_with_timestamps_strings_and_numbers():
    lines = [json.dumps({"timestamp": "2026-01-02T03:04:05Z", "loss": "0.5", "accuracy": 0.9}),
             json.dumps({"timestamp": 1700000000, "loss": 0.25}), json.dumps({"loss": "0.1"}),
             "not json", json.dumps({"loss": "nan-ish"})]
    samples = parse_json(lines, NAMES, now=3.0)
    assert [(s.metric, s.value) for s in samples] == [("loss", "0.5"), ("accuracy", "0.9"), ("loss", "0.25"), ("loss", "0.1")]
    assert samples[2].time == 1700000000 and samples[3].time == 3.0


def test_incremental_reads_only_complete_lines(tmp_path):
    log = tmp_path / "trial.log"
    c = Collector("StdOut", NAMES, output=log)
    assert c.collect() == []
    log.write_text("loss=0.5\nloss=0.4")
    assert [s.value for s in c.collect()] == ["0.5"]          # the second line is unfinished
    with open(log, "a") as f:
        f.write("\nloss=0.3\n")
    assert [s.value for s in c.collect()] == ["0.4", "0.3"]
    with open(log, "a") as f:
        f.write("loss=0.2")
    assert [s.value for s in c.collect(final=True)] == ["0.2"]


def test_file_json_collector_and_push_file(tmp_path):
    metrics, push = tmp_path / "m.json", tmp_path / "push.jsonl"
    metrics.write_text(json.dumps({"accuracy": "0.8"}) + "\n")
    push.write_text(json.dumps({"timestamp": "2026-01-01T00:00:00Z", "loss": "0.7"}) + "\n")
    c = Collector("File", NAMES, output=tmp_path / "trial.log", push_file=push, metrics_file=metrics, file_format="JSON")
    assert sorted((s.metric, s.value) for s in c.collect()) == [("accuracy", "0.8"), ("loss", "0.7")]


def test_report_metrics_writes_the_push_file(tmp_path, monkeypatch):
    import katib

    push = tmp_path / "push.jsonl"
    monkeypatch.setenv("KATIB_PUSH_FILE", str(push))
    katib.report_metrics({"loss": 0.25, "accuracy": "0.9"})
    samples = Collector("Push", NAMES, output=tmp_path / "x", push_file=push).collect()
    assert sorted((s.metric, s.value) for s in samples) == [("accuracy", "0.9"), ("loss", "0.25")]
    with pytest.raises(ValueError, match="metric 'loss' must be a number"):
        katib.report_metrics({"loss": "abc"})


def test_report_metrics_writes_every_number_it_accepts_as_one_the_collector_reads(tmp_path, monkeypatch):
    """``True`` and ``Fraction(1, 3)`` pass as numbers (``float`` takes them) but were written
    as ``True`` and ``1/3``, which the collector dropped: the report said nothing, and the
    metric was never seen. A metric named ``timestamp`` replaced the report's time."""
    from fractions import Fraction

    import numpy as np

    import katib

    push = tmp_path / "push.jsonl"
    monkeypatch.setenv("KATIB_PUSH_FILE", str(push))
    katib.report_metrics({"loss": True, "accuracy": Fraction(1, 3)})
    katib.report_metrics({"loss": np.float32(0.1), "accuracy": 2})
    samples = Collector("Push", NAMES, output=tmp_path / "x", push_file=push).collect()
    assert [(s.metric, s.value) for s in samples] == [
        ("loss", "1.0"), ("accuracy", "0.3333333333333333"), ("loss", "0.1"), ("accuracy", "2")]
    with pytest.raises(ValueError, match="'timestamp' is not a metric name"):
        katib.report_metrics({"timestamp": 3, "loss": 0.5})


def test_report_metrics_outside_a_trial_says_why(monkeypatch):
    import katib

    monkeypatch.delenv("KATIB_PUSH_FILE", raising=False)
    with pytest.raises(katib.KatibError, match="inside a trial started by katib"):
        katib.report_metrics({"loss": 1})


def test_katib_genotype_filter_keeps_text_values():
    genotype = "Genotype(normal=[[('separable_convolution_3x3', 0), ('skip_connection', 1)]], normal_concat=range(2, 3))"
    filters = [re.compile(r"([\w-]+)=(Genotype.*)"), re.compile(DEFAULT_FILTER)]
    lines = ["Validation-Accuracy=0.93", f"Best-Genotype={genotype}", "loss=e5"]
    samples = parse_text(lines, {"Best-Genotype", "Validation-Accuracy", "loss"}, filters, now=1.0)
    assert [(s.metric, s.value) for s in samples] == [("Validation-Accuracy", "0.93"), ("Best-Genotype", genotype)]


def test_a_users_filter_cannot_hold_the_server_on_a_trials_output(tmp_path):
    """A tenant's metricsFormat runs in the server on every line its trial prints. Python's
    backtracking re took seconds on ``((?:a+)+)=(\\d)`` over 26 characters (doubling with
    each one): the filters run on RE2, as Katib's Go collector does, in linear time."""
    import time

    log = tmp_path / "trial.log"
    log.write_text("a" * 27 + "b\n" + "aaa=7\n")  # the old engine: ~10 s here; RE2: microseconds
    c = Collector("StdOut", {"aaa"}, output=log, filters=[r"((?:a+)+)=(\d)"])
    started = time.perf_counter()
    samples = c.collect(final=True)
    assert time.perf_counter() - started < 2
    assert [(s.metric, s.value) for s in samples] == [("aaa", "7")]


def test_a_line_longer_than_a_read_is_dropped_not_held(tmp_path, monkeypatch):
    """A trial's output without a newline was read whole at every collection (gigabytes
    into the server's memory, again and again); a line longer than a read is dropped, as
    Katib's line scanner drops it, and the lines after it are read."""
    from trials import _collector, _tail

    monkeypatch.setattr(_tail, "CHUNK", 64)
    log = tmp_path / "trial.log"
    log.write_text("loss=0.9\n" + "x" * 1000)
    tail = _collector.Tail(log)
    seen = tail.read()
    assert seen == ["loss=0.9"]
    for _ in range(10):  # the long line, read a bounded piece at a time
        assert tail.read() == []
    with log.open("a") as f:
        f.write("x" * 1000 + " loss=0.5\nloss=0.4\nloss=0.3")
    seen = []
    for _ in range(20):
        seen += tail.read()
    assert seen == ["loss=0.4"]  # the end of the long line went with it; the unfinished one waits
    assert tail.read(final=True) == ["loss=0.3"]
    assert tail.offset == log.stat().st_size


def test_a_pushed_file_keeps_text_a_katib_collector_reported_to_the_db_manager(tmp_path):
    """Katib's collectors report a genotype beside the accuracy in one ReportObservationLog;
    Katib keeps the text. The push file kept only numbers, so the DBManager had to refuse
    the whole report (the accuracy with it) or lose the genotype unsaid."""
    push = tmp_path / "push.jsonl"
    push.write_text(json.dumps({"timestamp": 1.0, "Validation-accuracy": "0.9"}) + "\n"
                    + json.dumps({"timestamp": 1.0, "Best-Genotype": "Genotype(normal=[('skip', 0)])"}) + "\n"
                    + json.dumps({"timestamp": 2.0, "Validation-accuracy": "nan"}) + "\n")
    names = {"Validation-accuracy", "Best-Genotype"}
    samples = Collector("Push", names, output=tmp_path / "x", push_file=push).collect()
    assert [(s.metric, s.value) for s in samples] == [
        ("Validation-accuracy", "0.9"), ("Best-Genotype", "Genotype(normal=[('skip', 0)])")]
