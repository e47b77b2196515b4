"""The File (and StdOut) collector's parsing as Katib's does it.

Ported from ``pkg/metricscollector/v1beta1/file-metricscollector/file-metricscollector_test.go``
(``TestCollectObservationLog``), every case, through our ``Collector`` reading the file
as a trial's File collector does. Katib answers a file without the objective metric with
one ``unavailable`` log; here the trial itself ends ``MetricsUnavailable``, so those cases
expect no objective sample.
"""

from __future__ import annotations

import pytest

from katib._dbmanager import format_rfc3339, parse_rfc3339
from katib.errors import ValidationError
from tests.conftest import experiment
from trials import Collector

UPSTREAM = "pkg/metricscollector/v1beta1/file-metricscollector/file-metricscollector_test.go"
ZERO = "0001-01-01T00:00:00Z"  # time.Time{}.UTC().Format(time.RFC3339)
FILTER = r"{metricName: ([\w|-]+), metricValue: ((-?\d+)(\.\d+)?)}"

GOOD_JSON = """{"checkpoint_path": "", "global_step": "0", "loss": "0.22082142531871796", "timestamp": 1638422847.28721, "trial": "0"}
{"acc": "0.9349666833877563", "checkpoint_path": "", "global_step": "0", "timestamp": 1638422847.287801, "trial": "0"}
{"checkpoint_path": "", "global_step": "1", "loss": "0.1414974331855774", "timestamp": "2021-12-02T14:27:50.000035161Z", "trial": "0"}
{"acc": "0.9586416482925415", "checkpoint_path": "", "global_step": "1", "timestamp": "2021-12-02T14:27:50.000037459Z", "trial": "0"}
{"checkpoint_path": "", "global_step": "2", "loss": "0.10683439671993256", "trial": "0"}"""
GOOD_JSON_EXPECTED = [
    ("2021-12-02T05:27:27.000028721Z", "loss", "0.22082142531871796"),
    ("2021-12-02T05:27:27.000287801Z", "acc", "0.9349666833877563"),
    ("2021-12-02T14:27:50.000035161Z", "loss", "0.1414974331855774"),
    ("2021-12-02T14:27:50.000037459Z", "acc", "0.9586416482925415"),
    (ZERO, "loss", "0.10683439671993256"),
]
GOOD_TEXT = """2024-03-04T17:55:08Z INFO     {metricName: accuracy, metricValue: 0.8078};{metricName: loss, metricValue: 0.5183}
2024-03-04T17:55:08Z INFO     {metricName: accuracy, metricValue: 0.6752}
2024-03-04T17:55:08Z INFO     {metricName: loss, metricValue: 0.3634}
2024-03-04T17:55:08Z INFO     {metricName: accuracy, metricValue: 100}
2024-03-04T17:55:08Z INFO     {metricName: accuracy, metricValue: 888.333}
2024-03-04T17:55:08Z INFO     {metricName: accuracy, metricValue: -0.4759}
{metricName: loss, metricValue: 0.8671}"""
T = "2024-03-04T17:55:08Z"


def collect(tmp_path, data: str, metrics: list[str], fmt: str, filters: list[str] | None = None) -> list[tuple]:
    path = tmp_path / "metrics.log"
    path.write_text(data)
    c = Collector("File", set(metrics), output=tmp_path / "trial.log", metrics_file=path, file_format=fmt,
                  filters=filters)
    return [(s.time, s.metric, s.value) for s in c.collect(final=True)]


def near(got: float, expected: str) -> bool:
    """Within a microsecond: our times are floats, Katib's strings hold nanoseconds."""
    return abs(got - parse_rfc3339(expected)) < 1e-6


def test_positive_case_for_logs_in_json_format(tmp_path):
    got = collect(tmp_path, GOOD_JSON, ["acc", "loss"], "JSON")
    assert [(m, v) for _, m, v in got] == [(m, v) for _, m, v in GOOD_JSON_EXPECTED]
    for (when, _, _), (stamp, _, _) in list(zip(got, GOOD_JSON_EXPECTED, strict=True))[2:]:
        assert near(when, stamp)  # RFC 3339 text, and no timestamp: Katib's zero time
    assert format_rfc3339(got[4][0]) == ZERO


@pytest.mark.xfail(strict=True, reason="Katib reads a float timestamp's fraction digits as nanoseconds "
                                       "(1638422847.28721 → .000028721 s); we read seconds (.28721 s)")
def test_positive_case_for_logs_in_json_format_float_timestamps(tmp_path):
    got = collect(tmp_path, GOOD_JSON, ["acc", "loss"], "JSON")
    assert near(got[0][0], GOOD_JSON_EXPECTED[0][0]) and near(got[1][0], GOOD_JSON_EXPECTED[1][0])


def test_positive_case_for_logs_in_text_format(tmp_path):
    got = collect(tmp_path, GOOD_TEXT, ["accuracy", "loss"], "TEXT", [FILTER])
    expected = [(T, "accuracy", "0.8078"), (T, "loss", "0.5183"), (T, "accuracy", "0.6752"), (T, "loss", "0.3634"),
                (T, "accuracy", "100"), (T, "accuracy", "888.333"), (T, "accuracy", "-0.4759"), (ZERO, "loss", "0.8671")]
    assert [(format_rfc3339(t), m, v) for t, m, v in got] == expected


@pytest.mark.parametrize("data", [
    pytest.param("""2024-03-04T17:55:08Z INFO     {metricName: accuracy, metricValue: .333}
2024-03-04T17:55:08Z INFO     {metricName: accuracy, metricValue: -.333}
2024-03-04T17:55:08Z INFO     {metricName: accuracy, metricValue: - 345.333}
2024-03-04T17:55:08Z INFO     {metricName: accuracy, metricValue: 888.}""", id="Invalid case for logs in TEXT format"),
    pytest.param("""2024-03-04T17:55:08Z INFO     {metricName: accuracy, metricValue: 0.6752
2024-03-04T17:55:08Z INFO     {metricName: loss, metricValue: 0.3634}""", id="Invalid formatted file for logs in TEXT format"),
])
def test_nothing_valid_is_nothing_collected(tmp_path, data):
    """Katib: one ``accuracy = unavailable`` log; here no sample (the trial ends MetricsUnavailable)."""
    assert [x for x in collect(tmp_path, data, ["accuracy", "loss"], "TEXT", [FILTER]) if x[1] == "accuracy"] == []


def test_invalid_file_name(tmp_path):
    """Katib: errOpenFile. A trial's file may not exist yet: nothing is collected, and a
    trial that never writes it ends MetricsUnavailable."""
    c = Collector("File", {"loss"}, output=tmp_path / "trial.log", metrics_file=tmp_path / "invalid", file_format="JSON")
    assert c.collect(final=True) == []


def test_invalid_file_format():
    """Katib: errFileFormat; here the experiment is refused, naming the field."""
    from katib.controller import admit

    doc = experiment(metricsCollectorSpec={"collector": {"kind": "File"}, "source": {"fileSystemPath": {
        "path": "/var/log/katib/metrics.log", "kind": "File", "format": "invalid"}}})
    with pytest.raises(ValidationError, match=r"fileSystemPath.format: must be TEXT or JSON \(got 'invalid'\)"):
        admit(doc)


@pytest.mark.xfail(strict=True, reason="Katib fails the whole file on a line that is not JSON (errParseJson); we "
                                       "skip the line: the file is read while the trial writes it")
def test_invalid_formatted_file_for_logs_in_json_format(tmp_path):
    data = """"checkpoint_path": "", "global_step": "0", "loss": "0.22082142531871796", "timestamp": 1638422847.28721, "trial": "0"
{"acc": "0.9349666833877563", "checkpoint_path": "", "global_step": "0", "timestamp": 1638422847.287801, "trial": "0"""
    with pytest.raises(ValueError):
        collect(tmp_path, data, ["acc", "loss"], "JSON")


def test_invalid_timestamp_for_logs_in_json_format(tmp_path):
    data = """{"checkpoint_path": "", "global_step": "0", "loss": "0.22082142531871796", "timestamp": "invalid", "trial": "0"}
{"acc": "0.9349666833877563", "checkpoint_path": "", "global_step": "0", "timestamp": 1638422847, "trial": "0"}"""
    got = collect(tmp_path, data, ["acc", "loss"], "JSON")
    assert [(format_rfc3339(t), m, v) for t, m, v in got] == [
        (ZERO, "loss", "0.22082142531871796"), ("2021-12-02T05:27:27Z", "acc", "0.9349666833877563")]


def test_invalid_timestamp_for_logs_in_text_format(tmp_path):
    data = """2024-03-04T17:55:08Z INFO     {metricName: accuracy, metricValue: 0.6752}
invalid INFO     {metricName: loss, metricValue: 0.3634}"""
    got = collect(tmp_path, data, ["accuracy", "loss"], "TEXT", [FILTER])
    assert [(format_rfc3339(t), m, v) for t, m, v in got] == [(T, "accuracy", "0.6752"), (ZERO, "loss", "0.3634")]


@pytest.mark.xfail(strict=True, reason="Katib reports only `accuracy = unavailable` and drops the other metrics; we "
                                       "keep them (the trial still ends MetricsUnavailable)")
def test_missing_objective_metric_in_text_training_logs(tmp_path):
    data = """2024-03-04T17:55:08Z INFO     {metricName: loss, metricValue: 0.3634}
2024-03-04T17:55:08Z INFO     {metricName: loss, metricValue: 0.8671}"""
    assert collect(tmp_path, data, ["accuracy", "loss"], "TEXT", [FILTER]) == []


# -- the JSON format takes strings only, and keeps text (parseLogsInJsonFormat) -----------

def test_json_numbers_are_not_metrics_and_text_is_kept(tmp_path):
    """``jsonObj[m].(string)``: a JSON number is not a metric value in Katib's JSON format;
    any string is (a DARTS genotype stays text)."""
    data = '{"loss": 0.5, "timestamp": "2026-01-01T00:00:00Z"}\n{"loss": "0.25", "genotype": "Genotype(normal=[])"}\n'
    got = collect(tmp_path, data, ["loss", "genotype"], "JSON")
    assert [(format_rfc3339(t), m, v) for t, m, v in got] == [(ZERO, "loss", "0.25"), (ZERO, "genotype", "Genotype(normal=[])")]
