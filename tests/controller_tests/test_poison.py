"""Issue 19: an experiment its controller cannot run is marked Failed with the reason, and
``resume`` says truthfully whether anything runs."""

from __future__ import annotations

import time

from katib.controller import ExperimentManager
from katib.spec import admit
from tests.api_tests.conftest import LiveServer
from tests.conftest import experiment, python_command


def _store_unchecked(store, namespace: str, name: str = "demo"):
    """An experiment as an older database may hold it: stored without today's admission."""
    exp = admit(experiment(name=name, maxTrialCount=1, parallelTrialCount=1))
    spec = exp.model_dump(by_alias=True, exclude_none=True, mode="json")
    spec["metadata"]["namespace"] = namespace
    return store.create_experiment(namespace, name, spec, {"conditions": []}, "/tmp")


def test_a_poisoned_experiment_is_marked_failed_with_the_reason(sqlite_store, tmp_path):
    # "Bad_NS" breaks the name rule: the controller cannot build a path for its trials.
    _store_unchecked(sqlite_store, "Bad_NS")
    with LiveServer(sqlite_store, tmp_path) as server:  # its start resumes every unfinished experiment
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            rec = sqlite_store.get_experiment("Bad_NS", "demo")
            if any(c.type == "Failed" and c.status == "True" for c in rec.status.conditions):
                break
            time.sleep(0.05)
        failed = next(c for c in rec.status.to_dict()["conditions"] if c["type"] == "Failed")
        assert failed["reason"] == "ExperimentControllerFailed"
        assert "namespace" in failed["message"] and "Bad_NS" in failed["message"]
        assert not server.app.state.katib.manager.is_running("Bad_NS", "demo")


def test_resume_says_whether_the_controller_runs(sqlite_store, tmp_path):
    class Broken(Exception):
        pass

    def broken_executor():
        raise Broken("no executor today")

    rec = _store_unchecked(sqlite_store, "default")
    manager = ExperimentManager(sqlite_store, tmp_path / "runs", tick=0.05, executor_factory=broken_executor)
    error = manager.resume(rec.namespace, rec.name)
    assert error is not None and "no executor today" in error
    assert not manager.is_running(rec.namespace, rec.name)
    status = sqlite_store.get_experiment(rec.namespace, rec.name).status.to_dict()
    assert any(c["type"] == "Failed" and c["reason"] == "ExperimentControllerFailed" for c in status["conditions"])


def test_resume_over_the_api_is_truthful(sqlite_store, tmp_path):
    with LiveServer(sqlite_store, tmp_path) as live:
        _resume_truthfully(live)


def _resume_truthfully(live):
    c = live.client
    slow = python_command("import time; time.sleep(1.5); print('loss=0.5')")
    assert c.post("/api/v1/namespaces/default/experiments",
                  json=experiment(maxTrialCount=2, parallelTrialCount=1, command=slow)).status_code == 201
    r = c.post("/api/v1/namespaces/default/experiments/demo/stop")
    assert r.status_code == 200 and r.json() == {"running": False}
    r = c.post("/api/v1/namespaces/default/experiments/demo/resume")
    assert r.status_code == 200 and r.json() == {"running": True}
    live.wait_for("default", "demo", timeout=60)
    r = c.post("/api/v1/namespaces/default/experiments/demo/resume")
    assert r.status_code == 409 and "has finished" in r.json()["message"]


def test_times_rfc3339_cannot_write_poison_neither_the_trial_nor_its_log(sqlite_store, tmp_path):
    """A trial's pushed ``"timestamp": "nan"`` was stored as NULL: every later write failed
    as "a trial with that name already exists", which the server took for a passing
    conflict, and the experiment stayed Running with no controller. A line timed in the year
    0 (UTC) was stored, and every read of the trial's observations answered 500. Now such a
    time is no time: the value is kept, timed when it was read."""
    from katib._times import TIME_MAX, TIME_MIN
    from katib.controller import Controller, rfc3339

    code = """
import json, os
with open(os.environ["KATIB_PUSH_FILE"], "a") as f:
    f.write(json.dumps({"timestamp": "nan", "loss": "0.5"}) + "\\n")
    f.write(json.dumps({"timestamp": 1e300, "loss": "0.4"}) + "\\n")
    f.write('{"timestamp": 1' + '0' * 400 + ', "loss": "0.35"}\\n')
print("0001-01-01T00:00:00+14:00 loss=0.3", flush=True)
"""
    doc = experiment(name="when", maxTrialCount=1, parallelTrialCount=1,
                     objective={"type": "minimize", "objectiveMetricName": "loss"},
                     command=python_command(code))
    ctl = Controller(sqlite_store, runs_root=tmp_path / "runs", tick=0.05)
    rec, _ = ctl.submit(admit(doc), tmp_path)
    status = ctl.run(rec.namespace, rec.name).to_dict()
    assert status["trialsSucceeded"] == 1, status.get("conditions")
    [t] = sqlite_store.list_trials(rec.id)
    rows = sqlite_store.observations(t.id)
    assert sorted(r.value for r in rows) == ["0.3", "0.35", "0.4", "0.5"]
    assert all(TIME_MIN <= r.time <= TIME_MAX and rfc3339(r.time) for r in rows)  # no time (Katib's zero time) or read time


def test_a_failed_run_does_not_mark_failed_what_another_controller_has_taken_up(sqlite_store, tmp_path):
    """A run lets the experiment go (its owner cleared) before its failure is recorded; a
    server that adopted it in between runs it on, and the failure was written over its
    live run's status. It is recorded only while nobody holds the experiment."""
    rec = _store_unchecked(sqlite_store, "default")
    manager = ExperimentManager(sqlite_store, tmp_path / "runs", tick=0.05)
    try:
        sqlite_store.update_experiment(rec.id, owner="another-server")
        manager._mark_failed(("default", "demo"), "the controller failed: boom")
        assert not any(c.type == "Failed" for c in sqlite_store.get_experiment("default", "demo").status.conditions)
        sqlite_store.update_experiment(rec.id, owner=None)
        manager._mark_failed(("default", "demo"), "the controller failed: boom")
        assert any(c.type == "Failed" and c.status == "True"
                   for c in sqlite_store.get_experiment("default", "demo").status.conditions)
    finally:
        manager.shutdown()
