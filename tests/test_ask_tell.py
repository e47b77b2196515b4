"""Ask and tell: an outside loop drives an experiment (spec.executor: external)."""

from __future__ import annotations

import pytest

from katib import KatibClient
from katib.errors import ConflictError, ValidationError
from tests.api_tests.conftest import LiveServer


def external(name="outside", **spec):
    doc = {
        "apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment", "metadata": {"name": name},
        "spec": {"objective": {"type": "minimize", "objectiveMetricName": "loss", "goal": 0.001},
                 "algorithm": {"algorithmName": "tpe", "algorithmSettings": [{"name": "random_state", "value": "2"}]},
                 "executor": "external", "parallelTrialCount": 2, "maxTrialCount": 8, "maxFailedTrialCount": 2,
                 "parameters": [{"name": "x", "parameterType": "double", "feasibleSpace": {"min": "-3", "max": "3"}}]},
    }
    doc["spec"].update(spec)
    return doc


@pytest.fixture(params=["embedded", "server"])
def client(request, tmp_path, sqlite_store):
    if request.param == "embedded":
        yield KatibClient(db=str(tmp_path / "e.db"), workdir=tmp_path)
    else:
        with LiveServer(sqlite_store, tmp_path) as server:
            yield KatibClient(url=server.url)


def test_an_outside_loop_runs_the_experiment(client):
    client.create_experiment(external())
    told = 0
    while True:
        try:
            batch = client.ask("outside", count=2)
        except ConflictError as exc:
            assert "has finished" in str(exc) or "budget" in str(exc)
            break
        assert 1 <= len(batch) <= 2
        for trial in batch:
            x = float(trial["parameters"]["x"])
            result = client.tell("outside", trial["name"], {"loss": (x - 1) ** 2})
            assert result["state"] == "Succeeded"
            told += 1
    assert told == 8
    obj = client.get_experiment("outside")
    assert [c["reason"] for c in obj["status"]["conditions"] if c["status"] == "True"][-1] == "ExperimentMaxTrialsReached"
    assert obj["status"]["trialsSucceeded"] == 8
    assert obj["status"]["currentOptimalTrial"]["bestTrialName"]


def test_parallelism_failures_and_errors(client):
    client.create_experiment(external(name="strict"))
    first = client.ask("strict", count=5)
    assert len(first) == 2  # parallelTrialCount
    with pytest.raises(ConflictError, match="no free slot"):
        client.ask("strict")
    with pytest.raises(ValidationError, match="'acc' is not a metric of the experiment"):
        client.tell("strict", first[0]["name"], {"acc": 1})
    with pytest.raises(ValidationError, match="no trial 'nope'"):
        client.tell("strict", "nope", {"loss": 1})
    assert client.tell("strict", first[0]["name"], {}, outcome="Failed")["state"] == "Failed"
    assert client.tell("strict", first[1]["name"], {"loss": 0.5}, outcome="Succeeded")["state"] == "Succeeded"
    with pytest.raises(ConflictError, match="already ended"):
        client.tell("strict", first[1]["name"], {"loss": 0.1})
    second = client.ask("strict", count=2)
    assert client.tell("strict", second[0]["name"], {})["state"] == "MetricsUnavailable"
    obj = client.get_experiment("strict")
    # Failed + MetricsUnavailable reached maxFailedTrialCount: the experiment failed.
    assert [c["type"] for c in obj["status"]["conditions"] if c["status"] == "True"][-1] == "Failed"
    assert obj["status"]["trialsKilled"] == 1  # the one still out


def test_a_lowered_failure_budget_ends_it_at_the_next_ask(client):
    """Two failures told under maxFailedTrialCount 4, then the budget lowered to 2: Katib's
    reconcile ends the experiment Failed; ask handed out two more trials and it ran on."""
    client.create_experiment(external(name="lowered", maxFailedTrialCount=4))
    for trial in client.ask("lowered", count=2):
        client.tell("lowered", trial["name"], {}, outcome="Failed")
    client.edit_experiment_budget("lowered", max_failed_trial_count=2)
    with pytest.raises(ConflictError, match=r"has finished \(ExperimentFailed\)"):
        client.ask("lowered", count=2)
    obj = client.get_experiment("lowered")
    assert [(c["type"], c["reason"]) for c in obj["status"]["conditions"] if c["status"] == "True"][-1] == \
        ("Failed", "ExperimentFailed")
    assert obj["status"]["trials"] == 2


@pytest.mark.parametrize("stamp", ["nan", "Infinity", 1e300, -1e18, "0001-01-01T00:00:00+14:00", 10**400])
def test_a_time_rfc3339_cannot_write_is_refused_naming_it(client, stamp):
    """A NaN time was stored as NULL and refused as "a trial with that name already exists";
    a time past the year 9999 was stored, and the trial's log then answered 500."""
    client.create_experiment(external(name="when"))
    trial = client.ask("when")[0]
    with pytest.raises(ValidationError, match=r"metrics\[0\]\.timestamp: must be an RFC 3339 time|timestamp.float"):
        client.tell("when", trial["name"], [{"name": "loss", "value": 0.5, "timestamp": stamp}])
    assert client.tell("when", trial["name"], {"loss": 0.5})["state"] == "Succeeded"


def test_a_goal_ends_it_and_local_experiments_refuse(client):
    client.create_experiment(external(name="goal"))
    trial = client.ask("goal")[0]
    client.tell("goal", trial["name"], [{"name": "loss", "value": 0.0001, "timestamp": "2026-01-01T00:00:00Z"}])
    assert client.is_experiment_succeeded("goal")
    with pytest.raises(ConflictError, match="has finished"):
        client.ask("goal")
    from tests.conftest import experiment

    client.create_experiment(experiment(name="local"))
    with pytest.raises(ConflictError, match="spec.executor: external"):
        client.ask("local")


def test_external_experiments_need_no_template_but_refuse_one():
    from katib.controller import admit
    from tests.conftest import experiment

    admit(external())
    doc = experiment()
    doc["spec"]["executor"] = "external"
    with pytest.raises(ValidationError, match="trialTemplate: must not be set with the external executor"):
        admit(doc)
    doc["spec"]["executor"] = "ray"
    with pytest.raises(ValidationError, match="spec.executor: must be one of local, external"):
        admit(doc)


def test_katib_run_refuses_an_external_experiment(tmp_path):
    import subprocess
    import sys

    import yaml

    path = tmp_path / "ext.yaml"
    path.write_text(yaml.safe_dump(external()))
    r = subprocess.run([sys.executable, "-m", "katib", "run", str(path), "--db", str(tmp_path / "k.db")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "driven from outside (spec.executor: external)" in r.stderr


def test_an_exhausted_grid_ends_at_its_last_tell(client):
    """A loop that asks for a grid's every point, then stops asking, must see the
    experiment Succeeded after its last tell (as the controller ends a grid whose last
    trial ended), not Running until an ask nobody makes."""
    doc = external(name="grid", objective={"type": "minimize", "objectiveMetricName": "loss"},
                   algorithm={"algorithmName": "grid"},
                   parameters=[{"name": "x", "parameterType": "categorical", "feasibleSpace": {"list": ["a", "b", "c"]}}])
    del doc["spec"]["maxTrialCount"]  # the grid's size is the budget
    client.create_experiment(doc)
    first = client.ask("grid", count=2)
    client.tell("grid", first[0]["name"], {"loss": 1.0})
    last = first[1:] + client.ask("grid", count=2)
    assert len(last) == 2
    client.tell("grid", last[0]["name"], {"loss": 0.5})
    status = client.get_experiment("grid")["status"]
    assert not any(c["type"] == "Succeeded" for c in status["conditions"])  # one trial still out
    client.tell("grid", last[1]["name"], {"loss": 2.0})
    status = client.get_experiment("grid")["status"]
    ended = [c for c in status["conditions"] if c["status"] == "True"]
    assert [(c["type"], c["reason"]) for c in ended][-1] == ("Succeeded", "ExperimentSuggestionEndReached")
    assert status["trialsSucceeded"] == 3 and status.get("completionTime")
    with pytest.raises(ConflictError, match="has finished"):
        client.ask("grid")


@pytest.mark.parametrize("algorithm", ["hyperband", "pbt"])
def test_stateful_algorithms_carry_on_round_after_round(client, algorithm):
    """Hyperband's brackets and PBT's population live in the algorithm state: every ask
    must store what it took from it, or the next ask proposes the same trials again."""
    x = {"name": "x", "parameterType": "double", "feasibleSpace": {"min": "0.1", "max": "0.9"}}
    if algorithm == "hyperband":
        settings = {"r_l": "9", "eta": "3", "resource_name": "epochs", "random_state": "1"}
        parameters = [x, {"name": "epochs", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "9"}}]
        parallel = 9
    else:
        settings = {"suggestion_trial_dir": "/var/log/katib/checkpoints/", "n_population": "5",
                    "truncation_threshold": "0.2", "random_state": "1"}
        parameters, parallel = [x], 5
    client.create_experiment(external(
        name=algorithm, objective={"type": "minimize", "objectiveMetricName": "loss"}, parameters=parameters,
        algorithm={"algorithmName": algorithm, "algorithmSettings": [{"name": k, "value": v} for k, v in settings.items()]},
        parallelTrialCount=parallel, maxTrialCount=20))
    seen: set[str] = set()
    rounds = 0
    while True:
        try:
            batch = client.ask(algorithm, count=2)  # less than a rung (a generation): the rest stays queued
        except ConflictError as exc:
            assert "has finished" in str(exc)
            break
        rounds += 1
        for trial in batch:
            assert trial["name"] not in seen
            seen.add(trial["name"])
            p = trial["parameters"]
            client.tell(algorithm, trial["name"], {"loss": float(p["x"]) / float(p.get("epochs", 1))})
    assert rounds >= 10 and len(seen) == 20
    assert client.get_experiment(algorithm)["status"]["trialsSucceeded"] == 20


def test_a_budget_edit_from_a_client_on_the_database_keeps_a_label_stored_meanwhile(tmp_path):
    """``KatibClient(db=…)`` beside a server: its budget edit read the experiment, and a
    label another writer stored before the edit's write was dropped by it. The edit is now
    made again from what is stored then."""
    client = KatibClient(db=str(tmp_path / "e.db"), workdir=tmp_path)
    try:
        client.create_experiment(external(name="edited"))
        store = client._backend.store  # type: ignore[union-attr]
        real = store.update_experiment
        raced: list[bool] = []

        def racing(exp_id, **fields):
            if fields.get("if_spec") is not None and not raced:  # another server's label lands first
                raced.append(True)
                now = store.get_experiment("default", "edited").spec
                real(exp_id, spec={**now, "metadata": {**now["metadata"], "labels": {"team": "a"}}})
            return real(exp_id, **fields)

        store.update_experiment = racing
        client.edit_experiment_budget("edited", max_trial_count=12)
        stored = store.get_experiment("default", "edited").spec
        assert raced and stored["spec"]["maxTrialCount"] == 12
        assert stored["metadata"]["labels"] == {"team": "a"}
    finally:
        client.close()


def test_a_stop_of_an_outside_loops_experiment_does_not_show_it_stopped(client):
    """An outside loop asks and tells on whatever a stop said (no controller runs it); its
    experiment showed Running=False, ExperimentStopped (and "resume it") for ever, while
    it ran on and resume answered 409."""
    client.create_experiment(external(name="outer"))
    [trial] = client.ask("outer")
    client.stop_experiment("outer")
    assert client.is_experiment_running("outer")
    client.tell("outer", trial["name"], {"loss": 1.0})
    assert client.is_experiment_running("outer")


def test_an_end_a_crash_cut_off_is_made_by_the_next_start_or_a_tell_told_again(tmp_path, monkeypatch):
    """A tell stores its trial, then the experiment's end; a server killed between the two
    left a grid's experiment Running for ever (3/3 told, 3 Succeeded): a server that starts
    settles it, and so does the tell told again (a 409: the trial has ended)."""
    from katib.controller import ExperimentManager
    from katib.controller._ask_tell import AskTell

    for retold in (False, True):
        client = KatibClient(db=str(tmp_path / f"c{retold}.db"), workdir=tmp_path)
        doc = external(name="cut", objective={"type": "minimize", "objectiveMetricName": "loss"},
                       algorithm={"algorithmName": "grid"},
                       parameters=[{"name": "x", "parameterType": "categorical", "feasibleSpace": {"list": ["a", "b"]}}])
        del doc["spec"]["maxTrialCount"]
        client.create_experiment(doc)
        first, second = client.ask("cut", count=2)
        client.tell("cut", first["name"], {"loss": 1.0})
        with monkeypatch.context() as crash:  # the tell's trial is stored; its end is not
            crash.setattr(AskTell, "_finish", lambda *a, **k: None)
            client.tell("cut", second["name"], {"loss": 0.5})
        assert not client.is_experiment_succeeded("cut")
        if retold:
            with pytest.raises(ConflictError, match="has already ended"):
                client.tell("cut", second["name"], {"loss": 0.5})
        else:
            ExperimentManager(client._backend.store, tmp_path / "runs", tick=0.05).resume_all()  # a server starts
        assert client.is_experiment_succeeded("cut")
        client.close()
