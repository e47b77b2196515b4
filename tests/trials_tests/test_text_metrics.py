"""Text metrics (DARTS' ``Best-Genotype=Genotype(...)``) reduced as Katib's trial controller
reduces the observation log (``getMetrics``, trial_controller_util.go): ``min`` and ``max``
over the values that are numbers (``unavailable`` when none is), ``latest`` the newest
value of any kind; a strategy's ``unavailable`` min or max falls back to the latest value
(``getObjectiveMetricValue``, status_util.go; ``convertTrialObservation``,
suggestionclient.go)."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

from katib import views
from katib.controller import Controller, admit, metric_value
from katib.controller._status import MetricReducer
from katib.store import summary_columns
from tests.conftest import experiment, python_command

GENOTYPE = "Genotype(normal=[[('separable_convolution_3x3', 0)]], normal_concat=range(2, 3))"


def _at(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()


def test_get_objective_metric_value_ported():
    """trial_controller_test.go TestGetObjectiveMetricValue: min and max over every value,
    latest the newest (of equal times, the one logged last)."""
    logs = [("2020-04-13T14:47:38+08:00", "error", "0.03"), ("2020-04-13T14:47:39+08:00", "error", "0.02"),
            ("2020-04-13T14:47:40+08:00", "error", "0.01"), ("2020-04-13T14:47:41+08:00", "error", "0.05"),
            ("2020-04-13T14:47:41+08:00", "error", "0.06"), ("2020-04-13T14:47:41+08:00", "error", "0.07"),
            ("2020-04-12T14:47:42+08:00", "error", "0.1"),
            ("2020-04-13T14:47:38+08:00", "acc", "0.7"), ("2020-04-13T14:47:39+08:00", "acc", "0.71"),
            ("2020-04-13T14:47:40+08:00", "acc", "0.72"), ("2020-04-13T14:47:41+08:00", "acc", "0.68"),
            ("2020-04-13T14:47:41+08:00", "acc", "0.69"), ("2020-04-13T14:47:41+08:00", "acc", "0.67"),
            ("2020-04-12T14:47:42+08:00", "acc", "0.6")]
    reducer = MetricReducer()
    for stamp, name, value in logs:
        reducer.add(_at(stamp), name, value)
    assert reducer.observation(["error", "acc"]) == {"error": {"min": "0.01", "max": "0.1", "latest": "0.07"},
                                                     "acc": {"min": "0.6", "max": "0.72", "latest": "0.67"}}


def test_a_text_metric_has_no_min_or_max():
    reducer = MetricReducer()
    reducer.add(1, "Best-Genotype", "Genotype(normal=[])")
    reducer.add(2, "Best-Genotype", GENOTYPE)
    reducer.add(1, "acc", "0.5")
    reducer.add(2, "acc", "not a number")  # a number, then text: min and max keep the numbers
    reducer.add(3, "acc", "0.25")
    reducer.add(4, "acc", "still text")
    reducer.add(0, "acc", "0.9")  # older than the latest, still a number: counts for max
    assert reducer.observation(["Best-Genotype", "acc", "never"]) == {
        "Best-Genotype": {"min": "unavailable", "max": "unavailable", "latest": GENOTYPE},
        "acc": {"min": "0.25", "max": "0.9", "latest": "still text"},
        "never": {"min": "unavailable", "max": "unavailable", "latest": "unavailable"},
    }


def test_an_unavailable_min_or_max_falls_back_to_latest():
    """suggestionclient_test.go TestConvertTrialObservation: "Observation doesn't have
    min (max) metric, latest is assigned"."""
    obs = {"loss": {"min": "unavailable", "max": "0.99", "latest": "0.05"},
           "acc": {"min": "0.1", "max": "unavailable", "latest": "0.90"},
           "g": {"min": "unavailable", "max": "unavailable", "latest": GENOTYPE}}
    assert metric_value(obs, "loss", "min") == 0.05 and metric_value(obs, "loss", "max") == 0.99
    assert metric_value(obs, "acc", "max") == 0.90 and metric_value(obs, "acc", "min") == 0.1
    assert metric_value(obs, "g", "max") is None  # text: no number, but shown as the latest
    assert views.shown_value(obs, "g", {"g": "max"}) == GENOTYPE
    assert views.shown_value(obs, "loss", {"loss": "min"}) == "0.05"


def test_a_darts_like_trial_stores_katibs_observation(store, tmp_path: Path):
    code = f"print('Validation-Accuracy=0.5'); print({'Best-Genotype=' + GENOTYPE!r}); print('Validation-Accuracy=0.9')"
    doc = experiment(maxTrialCount=1, parallelTrialCount=1, command=python_command(code),
                     objective={"type": "maximize", "objectiveMetricName": "Best-Genotype",
                                "additionalMetricNames": ["Validation-Accuracy"]},
                     metricsCollectorSpec={"collector": {"kind": "StdOut"}, "source": {"filter": {"metricsFormat": [
                         r"([\w-]+)=(Genotype.*)", r"([\w-]+)=([+-]?\d*(\.\d+)?([Ee][+-]?\d+)?)"]}}})
    ctl = Controller(store, runs_root=tmp_path / "runs", tick=0.05)
    rec, _ = ctl.submit(admit(doc), tmp_path)
    status = ctl.run(rec.namespace, rec.name).to_dict()
    [t] = store.list_trials(rec.id)
    assert t.state == "Succeeded"
    assert t.observation == {"Best-Genotype": {"min": "unavailable", "max": "unavailable", "latest": GENOTYPE},
                             "Validation-Accuracy": {"min": "0.5", "max": "0.9", "latest": "0.9"}}
    best = status["currentOptimalTrial"]
    assert best["bestTrialName"] == t.name
    assert {m["name"]: (m["min"], m["max"], m["latest"]) for m in best["observation"]["metrics"]} == {
        "Best-Genotype": ("unavailable", "unavailable", GENOTYPE), "Validation-Accuracy": ("0.5", "0.9", "0.9")}
    # Every screen shows the genotype under the objective's strategy (max): the latest.
    columns = summary_columns(store, rec.id, [], {"Best-Genotype": "max", "Validation-Accuracy": "min"})
    assert columns["metric:Best-Genotype"] == [GENOTYPE] and columns["metric:Validation-Accuracy"] == ["0.5"]



def test_nan_inf_and_empty_values_are_no_result():
    """What reads as a number and is none (``nan``, ``inf``, an overflowing ``1e400``) and
    empty text are not recorded, whichever collector read them: a NaN first would stay the
    best of every comparison, an infinity reach any goal (docs/algorithms.md)."""
    reducer = MetricReducer()
    for when, value in enumerate(["nan", "0.5", "-inf", "1e400", "", "  ", "NaN", "0.2", "+Infinity"]):
        reducer.add(when, "loss", value)
    reducer.add(0, "acc", "inf")
    reducer.add(1, "acc", "")
    assert reducer.observation(["loss", "acc"]) == {
        "loss": {"min": "0.2", "max": "0.5", "latest": "0.2"},
        "acc": {"min": "unavailable", "max": "unavailable", "latest": "unavailable"}}
    # An observation stored before (or a Katib server's) holding one is no value either.
    assert metric_value({"loss": {"min": "nan", "max": "inf", "latest": "-inf"}}, "loss", "min") is None
    assert metric_value({"loss": {"min": "nan", "max": "inf", "latest": "-inf"}}, "loss", "latest") is None


def test_a_json_file_of_nan_inf_and_empty_strings_gives_no_best_of_them(store, tmp_path: Path):
    """Katib's File collector in JSON format keeps each value as written; one trial writes
    ``"nan"``, one ``"1e400"``, one ``""``, one ``"0.5"``: the best is 0.5, and the others
    reported nothing (MetricsUnavailable), where the NaN was the best and the run succeeded."""
    code = ("import json; v = {'a': 'nan', 'b': '1e400', 'c': '', 'd': '0.5'}['${trialParameters.x}']\n"
            "open('/var/log/katib/m.json', 'w').write(json.dumps({'loss': v}) + '\\n')")
    doc = experiment(maxTrialCount=4, parallelTrialCount=1, maxFailedTrialCount=4, command=[sys.executable, "-c", code],
                     algorithm={"algorithmName": "grid"},
                     parameters=[{"name": "x", "parameterType": "categorical", "feasibleSpace": {"list": ["a", "b", "c", "d"]}}],
                     metricsCollectorSpec={"collector": {"kind": "File"}, "source": {"fileSystemPath": {
                         "kind": "File", "format": "JSON", "path": "/var/log/katib/m.json"}}})
    ctl = Controller(store, runs_root=tmp_path / "runs", tick=0.05)
    rec, _ = ctl.submit(admit(doc), tmp_path)
    status = ctl.run(rec.namespace, rec.name).to_dict()
    by_value = {t.parameters()["x"]: t for t in store.list_trials(rec.id)}
    assert {x: t.state for x, t in by_value.items()} == {"a": "MetricsUnavailable", "b": "MetricsUnavailable",
                                                         "c": "MetricsUnavailable", "d": "Succeeded"}
    assert status["currentOptimalTrial"]["bestTrialName"] == by_value["d"].name
    assert [m["latest"] for m in status["currentOptimalTrial"]["observation"]["metrics"]] == ["0.5"]


def test_a_run_that_diverged_has_no_latest_and_is_not_ranked_by_one(store, tmp_path: Path):
    """A trial that printed ``accuracy=0.95`` then ``accuracy=nan`` (it diverged) showed
    ``latest=0.95``, and under the ``latest`` strategy it was the best, ahead of a healthy
    trial's 0.5. Its latest is no number: it is not ranked under ``latest`` (it reported no
    value there: MetricsUnavailable), while its min and max keep the numbers it reported."""
    code = ("import sys; x = '${trialParameters.x}'\n"
            "print('accuracy=0.95'); sys.stdout.flush()\n"
            "print('accuracy=nan' if x == 'diverged' else 'accuracy=0.5')\n"
            "print('loss=0.3'); print('loss=nan'); print('loss=0.4')\n")
    doc = experiment(maxTrialCount=2, parallelTrialCount=1, maxFailedTrialCount=2, command=[sys.executable, "-c", code],
                     algorithm={"algorithmName": "grid"},
                     objective={"type": "maximize", "objectiveMetricName": "accuracy", "additionalMetricNames": ["loss"],
                                "metricStrategies": [{"name": "accuracy", "value": "latest"}]},
                     parameters=[{"name": "x", "parameterType": "categorical",
                                  "feasibleSpace": {"list": ["diverged", "healthy"]}}])
    ctl = Controller(store, runs_root=tmp_path / "runs", tick=0.05)
    rec, _ = ctl.submit(admit(doc), tmp_path)
    status = ctl.run(rec.namespace, rec.name).to_dict()
    by_value = {t.parameters()["x"]: t for t in store.list_trials(rec.id)}
    diverged, healthy = by_value["diverged"], by_value["healthy"]
    assert diverged.observation["accuracy"] == {"min": "0.95", "max": "0.95", "latest": "unavailable"}
    assert diverged.state == "MetricsUnavailable" and diverged.objective is None
    # Why, truly: it reported the metric (it was "never reported" beside its 0.95).
    assert "'accuracy' ended with a value that is not a number (nan, inf), and its strategy (latest)" in \
        diverged.conditions[-1].message, diverged.conditions[-1].message
    assert diverged.observation["loss"]["latest"] == "0.4"  # a number after the nan: the latest again
    assert status["currentOptimalTrial"]["bestTrialName"] == healthy.name


def test_a_nan_after_a_number_leaves_the_latest_unavailable_until_the_next_number():
    reducer = MetricReducer()
    reducer.add(1, "loss", "0.2")
    reducer.not_a_number("loss", 2)
    assert reducer.observation(["loss"])["loss"] == {"min": "0.2", "max": "0.2", "latest": "unavailable"}
    reducer.add(3, "loss", "0.7")
    assert reducer.observation(["loss"])["loss"] == {"min": "0.2", "max": "0.7", "latest": "0.7"}
    reducer.not_a_number("acc", 1)  # nothing before it: nothing reported
    assert reducer.observation(["acc"])["acc"]["latest"] == "unavailable"


def test_trials_that_reported_the_objective_then_failed_are_not_said_to_have_reported_none(store, tmp_path: Path):
    """Every trial printed its loss, then exited 1: the experiment's note said "no trial
    reported the objective metric 'loss'" beside the trials' losses in every table."""
    doc = experiment(maxTrialCount=2, parallelTrialCount=1, maxFailedTrialCount=2,
                     command=[sys.executable, "-c", "import sys; print('loss=${trialParameters.x}'); sys.exit(1)"])
    ctl = Controller(store, runs_root=tmp_path / "runs", tick=0.05)
    rec, _ = ctl.submit(admit(doc), tmp_path)
    status = ctl.run(rec.namespace, rec.name).to_dict()
    message = [c for c in status["conditions"] if c["type"] in ("Succeeded", "Failed") and c["status"] == "True"][0]["message"]
    assert "no trial ended with a result for the objective metric 'loss'" in message, message
    assert "no trial reported" not in message
