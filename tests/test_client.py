"""katib.KatibClient: the SDK's calls, embedded and against a server."""

from __future__ import annotations

import pytest

from katib import KatibClient, search
from katib.errors import NoResultError, ValidationError
from tests.api_tests.conftest import LiveServer
from tests.conftest import experiment


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
                max_trial_count=3, max_failed_trial_count=1)
    with pytest.raises(RuntimeError, match="failed"):
        client.wait_for_experiment_condition("broken", timeout=60)


def test_no_result_is_an_error_not_a_success(client):
    def silent(parameters):
        print("training done")  # never prints loss=...

    client.tune("silent", silent, {"x": search.double(0, 1)}, objective_metric_name="loss",
                objective_type="minimize", max_trial_count=2)
    with pytest.raises(NoResultError, match="no trial reported the objective metric 'loss'"):
        client.wait_for_experiment_condition("silent", timeout=60)
    assert client.is_experiment_succeeded("silent")  # Katib's conditions are kept
    with pytest.raises(NoResultError, match="MetricsUnavailable"):
        client.get_optimal_hyperparameters("silent")
