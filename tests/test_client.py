"""katib.KatibClient: the SDK's calls, embedded and against a server."""

from __future__ import annotations

import time

import pytest

from katib import KatibClient, search
from katib.errors import KatibError, NoResultError, ValidationError
from tests.api_tests.conftest import LiveServer
from tests.conftest import experiment, python_command


def objective(parameters):
    x = float(parameters["x"])
    opt = parameters["opt"]
    print(f"loss={(x - 2) ** 2 + (0 if opt == 'b' else 1):.6f}")


def pushing(parameters):
    import katib

    katib.report_metrics({"loss": abs(float(parameters["x"]) - 1)})


@pytest.fixture(params=["embedded", "server"])
def client(request, tmp_path, sqlite_store):
    if request.param == "embedded":
        yield KatibClient(db=str(tmp_path / "embedded.db"), workdir=tmp_path, tick=0.05)
    else:
        with LiveServer(sqlite_store, tmp_path) as server:
            yield KatibClient(url=server.url)


def test_tune_a_function_end_to_end(client):
    client.tune("quad", objective, {"x": search.double(-5, 5), "opt": search.categorical(["a", "b"])},
                objective_metric_name="loss", objective_type="minimize", max_trial_count=6,
                parallel_trial_count=2, algorithm_name="tpe", algorithm_settings={"random_state": 3})
    obj = client.wait_for_experiment_condition("quad", timeout=120)
    assert obj["status"]["trialsSucceeded"] == 6
    assert client.is_experiment_succeeded("quad") and not client.is_experiment_failed("quad")
    best = client.get_optimal_hyperparameters("quad")
    assert best["bestTrialName"].startswith("quad-")
    trials = client.list_trials("quad")
    assert len(trials) == 6
    details = client.get_success_trial_details("quad")
    assert len(details) == 6 and details[0]["metrics"][0]["name"] == "loss"
    metrics = client.get_trial_metrics(trials[0]["metadata"]["name"])
    assert metrics[0]["metric"]["name"] == "loss"
    assert [e["metadata"]["name"] for e in client.list_experiments()] == ["quad"]
    client.delete_experiment("quad")
    assert client.list_experiments() == []


def test_push_metrics_and_budget(client):
    client.tune("push", pushing, {"x": search.double(0, 2, distribution="uniform")}, objective_metric_name="loss",
                objective_type="minimize", max_trial_count=2, metrics_collector="Push")
    client.wait_for_experiment_condition("push", timeout=60)
    with pytest.raises(ValueError):
        client.edit_experiment_budget("push")
    with pytest.raises(ValidationError, match="resumePolicy"):
        client.edit_experiment_budget("push", max_trial_count=3)


def test_create_from_yaml_and_errors(client):
    import yaml

    client.create_experiment(yaml.safe_dump(experiment()))
    client.wait_for_experiment_condition("demo", timeout=60)
    with pytest.raises(ValidationError) as info:
        client.create_experiment(experiment(name="bad", maxTrialCount=0))
    assert "spec.maxTrialCount: must be > 0 (got 0)" in [str(e) for e in info.value.errors]


def test_failed_experiment_raises_while_waiting(client):
    def broken(parameters):
        raise SystemExit("boom")

    client.tune("broken", broken, {"x": search.double(0, 1)}, objective_metric_name="loss",
                max_trial_count=3, max_failed_trial_count=1, wait=False)  # Katib's SDK: create, then wait
    with pytest.raises(RuntimeError, match="failed"):
        client.wait_for_experiment_condition("broken", timeout=60)


def test_no_result_is_an_error_not_a_success(client):
    def silent(parameters):
        print("training done")  # never prints loss=...

    client.tune("silent", silent, {"x": search.double(0, 1)}, objective_metric_name="loss",
                objective_type="minimize", max_trial_count=2, wait=False)
    with pytest.raises(NoResultError, match="no trial reported the objective metric 'loss'"):
        client.wait_for_experiment_condition("silent", timeout=60)
    assert client.is_experiment_succeeded("silent")  # Katib's conditions are kept
    with pytest.raises(NoResultError, match="MetricsUnavailable"):
        client.get_optimal_hyperparameters("silent")


def _katib_threads(name: str) -> list[str]:
    import threading

    return [t.name for t in threading.enumerate() if t.name == f"katib-default-{name}" and t.is_alive()]


def test_reading_an_unfinished_experiment_starts_nothing(tmp_path):
    """A read is a read: an unfinished experiment found in the store stays as it is until
    someone resumes it."""
    from katib.controller import Controller, admit
    from katib.store import Store

    db = str(tmp_path / "k.db")
    store = Store(db)
    Controller(store, runs_root=tmp_path / "runs").submit(admit(experiment(name="left")), tmp_path)  # never run
    store.close()
    with KatibClient(db=db, workdir=tmp_path, tick=0.05) as client:
        assert client.get_experiment("left")["status"]["conditions"][-1]["type"] == "Created"
        client.list_trials("left")
        client.get_optimal_hyperparameters("left")
        client.is_experiment_succeeded("left")
        assert _katib_threads("left") == [] and client.list_trials("left") == []
        with pytest.raises(KatibError, match="nothing runs it"):
            client.wait_for_experiment_condition("left", timeout=30)
        assert "message" not in client.resume_experiment("left")  # running, or done already: no error
        obj = client.wait_for_experiment_condition("left", timeout=60)
        assert obj["status"]["trialsSucceeded"] == 4


def test_close_stops_the_controllers_the_client_started(tmp_path):
    slow = experiment(name="slow", command=python_command("import time; time.sleep(60); print('loss=1')"))
    started = time.monotonic()
    with KatibClient(db=str(tmp_path / "k.db"), workdir=tmp_path, tick=0.05) as client:
        client.create_experiment(slow)
        deadline = time.monotonic() + 30
        while not any(t["status"].get("startTime") for t in client.list_trials("slow")):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert _katib_threads("slow")
    assert _katib_threads("slow") == [] and time.monotonic() - started < 30
    with KatibClient(db=str(tmp_path / "k.db"), workdir=tmp_path) as again:
        assert not again.is_experiment_succeeded("slow")  # stopped, not finished: resume carries on
    client.close()  # closing twice is harmless


def test_a_remote_client_closes_and_resumes(tmp_path, sqlite_store):
    with LiveServer(sqlite_store, tmp_path) as server, KatibClient(url=server.url) as client:
        client.create_experiment(experiment(name="r", command=python_command("import time; time.sleep(60)")))
        server.client.post("/api/v1/namespaces/default/experiments/r/stop")
        assert client.resume_experiment("r")["running"] is True
        server.client.post("/api/v1/namespaces/default/experiments/r/stop")


def test_a_remote_wait_on_a_stopped_experiment_says_so(tmp_path, sqlite_store):
    """Embedded, a wait on an experiment nothing runs says so at once; against a server it
    polled until its timeout (600 s by default; tune(timeout=None) for ever). Now the
    server's word (`active`) ends it within a few seconds, as the embedded client does."""
    slow = experiment(name="halted", command=python_command("import time; time.sleep(60); print('loss=1')"))
    with LiveServer(sqlite_store, tmp_path) as server, KatibClient(url=server.url) as client:
        client.create_experiment(slow)
        client.stop_experiment("halted")
        started = time.monotonic()
        with pytest.raises(KatibError, match="nothing runs it"):
            client.wait_for_experiment_condition("halted", timeout=60, polling_interval=0.2)
        assert time.monotonic() - started < 15
        assert "message" not in client.resume_experiment("halted")  # and a running one is waited for
        with pytest.raises(TimeoutError):
            client.wait_for_experiment_condition("halted", timeout=6, polling_interval=0.2)


def test_apply_experiment_creates_then_does_what_katib_run_of_the_same_file_does(client):
    doc = experiment(name="applied", maxTrialCount=1, parallelTrialCount=1, resumePolicy="LongRunning")
    obj, action = client.apply_experiment(doc)
    assert action == "created" and obj["metadata"]["name"] == "applied"
    client.wait_for_experiment_condition("applied", timeout=60)
    assert client.apply_experiment(doc)[1] == "unchanged"  # finished: kept, not re-run
    assert len(client.list_trials("applied")) == 1
    doc["spec"]["maxTrialCount"] = 2  # a raised budget restarts it
    assert client.apply_experiment(doc)[1] == "restarted"
    deadline = time.monotonic() + 60
    while len(client.list_trials("applied")) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    client.wait_for_experiment_condition("applied", timeout=60)
    assert len(client.list_trials("applied")) == 2
    doc["spec"]["objective"]["type"] = "maximize"
    with pytest.raises(ValidationError, match="spec.objective"):
        client.apply_experiment(doc)


def test_an_optimization_jobs_budget_edit_keeps_its_source_and_a_plant_is_refused(client, tmp_path):
    """Security review 5: the annotation an OptimizationJob's experiment keeps its source in
    is the conversion's alone; the client's budget edit (embedded too) keeps it."""
    from katib.spec import OPTIMIZATION_JOB_SOURCE
    from tests.api_tests.test_optimizationjob_source import PLANTED, optimization_job

    release = tmp_path / "release"
    try:
        created = client.create_experiment(optimization_job("oj", release))
        source = created["metadata"]["annotations"][OPTIMIZATION_JOB_SOURCE]
        edited = client.edit_experiment_budget("oj", max_trial_count=4)
        assert edited["spec"]["maxTrialCount"] == 4
        assert edited["metadata"]["annotations"][OPTIMIZATION_JOB_SOURCE] == source
        planted = experiment(name="plain", maxTrialCount=1, parallelTrialCount=1)
        planted["metadata"]["annotations"] = {OPTIMIZATION_JOB_SOURCE: PLANTED}
        with pytest.raises(ValidationError, match="is reserved"):
            client.create_experiment(planted)
    finally:
        release.touch()


def test_an_optimization_jobs_experiment_fetched_and_applied_back_resumes(client, tmp_path):
    """Review of the reserved annotation: the object got back (annotation and all), its
    budget raised and applied again, resumes the experiment, as it did before the annotation
    was reserved (embedded, and through the server, whose create answers 409 for the name so
    apply submits it again); the same object under a new name is still refused."""
    import copy

    from katib.errors import NotFoundError
    from katib.spec import OPTIMIZATION_JOB_SOURCE
    from tests.api_tests.test_optimizationjob_source import optimization_job

    release = tmp_path / "release"
    try:
        source = client.create_experiment(optimization_job("oj", release))["metadata"]["annotations"][OPTIMIZATION_JOB_SOURCE]
        fetched = client.get_experiment("oj")
        fetched["spec"]["maxTrialCount"] = 4
        obj, action = client.apply_experiment(copy.deepcopy(fetched))
        assert (action, obj["spec"]["maxTrialCount"]) == ("resumed", 4)
        assert obj["metadata"]["annotations"][OPTIMIZATION_JOB_SOURCE] == source
        with pytest.raises(KatibError, match="already exists"):
            client.create_experiment(copy.deepcopy(fetched))  # a create of it is the name's conflict, not a refusal

        fetched["metadata"]["name"] = "copy"  # a new experiment: the annotation is not its to carry
        with pytest.raises(ValidationError, match=r"optimization-job\]: is reserved"):
            client.apply_experiment(fetched)
        with pytest.raises(NotFoundError):
            client.get_experiment("copy")
    finally:
        release.touch()
