"""The viewer's aggregated reads: the summary as columns, bounded learning curves, fANOVA
importance, the YAML, and the static page."""

from __future__ import annotations

import time

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from api import create_app  # noqa: E402
from api._summary import _downsample, experiment_summary, importance  # noqa: E402
from katib.controller import admit  # noqa: E402
from katib.controller._status import mark_trial  # noqa: E402
from katib.store import ObservationRow, TrialRecord  # noqa: E402
from tests.conftest import experiment  # noqa: E402


def _seed(store, n=30, steps=12):
    doc = experiment(parameters=[
        {"name": "x", "parameterType": "double", "feasibleSpace": {"min": "0", "max": "1"}},
        {"name": "c", "parameterType": "categorical", "feasibleSpace": {"list": ["a", "b"]}}])
    doc["spec"]["trialTemplate"]["trialParameters"] = [{"name": "x", "reference": "x"}, {"name": "c", "reference": "c"}]
    cmd = doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]
    cmd["command"] = ["echo", "${trialParameters.x}", "${trialParameters.c}"]
    exp = admit(doc)
    rec = store.create_experiment(exp.namespace, exp.name, exp.model_dump(by_alias=True, exclude_none=True, mode="json"),
                                  {"conditions": []}, "/tmp")
    trials = []
    for i in range(n):
        x = i / n
        t = TrialRecord(id=0, experiment_id=rec.id, name=f"t{i:03d}", state="Created",
                        assignments=[{"name": "x", "value": str(x)}, {"name": "c", "value": "ab"[i % 2]}],
                        created_at=time.time(), start_time=time.time(), completion_time=time.time() + 1)
        mark_trial(t, "Succeeded" if i % 5 else "EarlyStopped")
        loss = (x - 0.5) ** 2 + (0.3 if i % 2 else 0)
        t.observation = {"loss": {"min": str(loss), "max": str(loss), "latest": str(loss)}}
        trials.append(t)
    store.add_trials(trials)
    store.write_trials(samples=[(t.id, ObservationRow(k, "loss", str(1 / (k + 1)))) for t in trials for k in range(steps)])
    return store.get_experiment(exp.namespace, exp.name)


def test_summary_is_columns_with_bounded_curves(sqlite_store):
    rec = _seed(sqlite_store)
    s = experiment_summary(sqlite_store, rec, curves=10, points=5)
    cols = s["columns"]
    assert len(cols["name"]) == 30 and cols["state"][0] == "EarlyStopped" and cols["state"][1] == "Succeeded"
    assert cols["params"]["x"][3] == pytest.approx(0.1) and cols["params"]["c"][:2] == ["a", "b"]
    assert cols["metrics"]["loss"][0] == pytest.approx(0.25)
    assert s["objective"] == {"name": "loss", "maximize": False, "goal": None, "additional": [], "constraints": []}
    assert len(s["curves"]) == 10 and all(len(c["points"]) == 5 for c in s["curves"])
    names = {c["name"] for c in s["curves"]}
    best5 = sorted(range(30), key=lambda i: cols["metrics"]["loss"][i])[:5]
    assert {f"t{i:03d}" for i in best5} <= names and "t029" in names  # the best and the latest


def test_downsample_keeps_the_ends():
    assert _downsample([float(i) for i in range(100)], 5) == [[1, 0.0], [26, 25.0], [51, 50.0], [75, 74.0], [100, 99.0]]
    assert _downsample([1.0, 2.0], 5) == [[1, 1.0], [2, 2.0]]


def test_importance_finds_the_parameter_that_matters(sqlite_store):
    rec = _seed(sqlite_store, n=60)
    result = importance(sqlite_store, rec)
    assert set(result) == {"x", "c"} and abs(sum(result.values()) - 1) < 1e-6


def test_routes_and_the_page(sqlite_store, tmp_path):
    rec = _seed(sqlite_store)
    app = create_app(sqlite_store, tmp_path / "runs", tmp_path, resume=False)
    with TestClient(app, base_url="http://localhost") as client:
        base = f"/api/v1/namespaces/{rec.namespace}/experiments/{rec.name}"
        summary = client.get(base + "/summary", headers={"Accept-Encoding": "gzip"})
        assert summary.status_code == 200 and summary.headers["content-encoding"] == "gzip"
        assert summary.json()["active"] is False
        assert client.get(base + "/importance").status_code == 200
        assert "objectiveMetricName: loss" in client.get(base + "/yaml").text
        page = client.get("/")
        assert page.status_code == 200 and '<script src="/ui/app.js"' in page.text
        assert client.get("/ui/vendor/echarts-6.1.0-katib.min.js").status_code == 200
        assert client.get(base.replace(rec.name, "missing") + "/summary").status_code == 404


def test_since_sends_only_the_trials_written_after(sqlite_store):
    rec = _seed(sqlite_store, n=20)
    first = experiment_summary(sqlite_store, rec)
    assert first["since"] is None and len(first["columns"]["name"]) == 20
    time.sleep(1.1)  # past the answer's second of overlap
    quiet = experiment_summary(sqlite_store, rec, since=first["now"] + 1.0)
    assert quiet["columns"]["name"] == [] and quiet["curves"] == []
    t = sqlite_store.list_trials(rec.id)[7]
    t.observation = {"loss": {"min": "0.01", "max": "0.01", "latest": "0.01"}}
    sqlite_store.save_trial(t)
    delta = experiment_summary(sqlite_store, rec, since=first["now"] + 1.0)
    assert delta["columns"]["name"] == ["t007"] and delta["columns"]["metrics"]["loss"] == [0.01]


def test_a_metric_that_is_an_additional_objective_is_one_column(sqlite_store):
    """Additional objectives must be additional metrics too: listed once, one value per trial."""
    doc = experiment(objective={"type": "minimize", "objectiveMetricName": "loss", "additionalMetricNames": ["cost"],
                                "additionalObjectives": [{"metricName": "cost", "type": "minimize"}]})
    exp = admit(doc)
    rec = sqlite_store.create_experiment(exp.namespace, exp.name, exp.model_dump(by_alias=True, exclude_none=True, mode="json"),
                                         {"conditions": []}, "/tmp")
    trials = []
    for i in range(4):
        t = TrialRecord(id=0, experiment_id=rec.id, name=f"t{i}", state="Created",
                        assignments=[{"name": "x", "value": str(i / 10)}], created_at=time.time())
        mark_trial(t, "Succeeded")
        t.observation = {"loss": {"min": str(i), "max": str(i), "latest": str(i)},
                         "cost": {"min": str(10 * i), "max": str(10 * i), "latest": str(10 * i)}}
        trials.append(t)
    sqlite_store.add_trials(trials)
    s = experiment_summary(sqlite_store, sqlite_store.get_experiment(exp.namespace, exp.name))
    assert s["metrics"] == ["loss", "cost"]
    assert s["columns"]["metrics"]["cost"] == [0.0, 10.0, 20.0, 30.0]
    assert s["objective"]["additional"] == [{"metricName": "cost", "type": "minimize"}]


def test_columns_hold_the_metric_strategy_value(sqlite_store):
    """A trial's value is the one its metric strategy picks, as on every other screen; a
    spec stored without metricStrategies gets Katib's default (min when minimizing)."""
    exp = admit(experiment())
    spec = exp.model_dump(by_alias=True, exclude_none=True, mode="json")
    del spec["spec"]["objective"]["metricStrategies"]
    rec = sqlite_store.create_experiment(exp.namespace, exp.name, spec, {"conditions": []}, "/tmp")
    t = TrialRecord(id=0, experiment_id=rec.id, name="t0", state="Created", assignments=[{"name": "x", "value": "0.5"}],
                    created_at=time.time())
    mark_trial(t, "Succeeded")
    t.observation = {"loss": {"min": "0.2", "max": "0.7", "latest": "0.7"}}
    sqlite_store.add_trials([t])
    s = experiment_summary(sqlite_store, sqlite_store.get_experiment(exp.namespace, exp.name))
    assert s["strategies"] == {"loss": "min"}
    assert s["columns"]["metrics"]["loss"] == [0.2]


@pytest.mark.parametrize(("losses", "expected"), [
    ([0.5] * 10, {"x": 0.0, "c": 0.0}),   # the objective never varies: nothing explains it
    ([0.5, 0.5], {"x": 0.0, "c": 0.0}),
    ([0.3], {}),                           # too few trials to say anything
    ([], {}),
])
def test_importance_of_a_flat_or_small_experiment_is_an_answer(sqlite_store, tmp_path, losses, expected):
    rec = _seed(sqlite_store, n=len(losses)) if losses else _seed(sqlite_store, n=0)
    for t, loss in zip(sqlite_store.list_trials(rec.id), losses, strict=True):
        t.observation = {"loss": {"min": str(loss), "max": str(loss), "latest": str(loss)}}
        sqlite_store.save_trial(t)
    assert importance(sqlite_store, rec) == expected
    app = create_app(sqlite_store, tmp_path / "runs", tmp_path, resume=False)
    with TestClient(app, base_url="http://localhost") as client:
        r = client.get(f"/api/v1/namespaces/{rec.namespace}/experiments/{rec.name}/importance")
        assert r.status_code == 200 and r.json() == expected
