"""Edits of an existing experiment, refused where Katib's validating webhook refuses them
(``ValidateExperiment`` with ``oldInst``, validator.go) and accepted where it accepts them:
the rules (``update_errors``, with validator_test.go's update cases ported), the
controller that applies an edit, and the API's 422 naming the field."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from katib.controller import Controller, admit
from katib.errors import ValidationError
from katib.spec import Condition, ExperimentStatus, update_errors
from tests.conftest import experiment

NEVER_RESTART = ("spec.resumePolicy: Experiment can be restarted if it is in succeeded state by reaching max trials "
                 "and spec.resumePolicy = LongRunning or spec.resumePolicy = FromVolume, when experiment is completed")


def fake() -> dict:
    """validator_test.go's newFakeInstance spec (the parts the update rules read)."""
    return {
        "maxTrialCount": 6,
        "objective": {"type": "maximize", "goal": 0.11, "objectiveMetricName": "testme"},
        "algorithm": {"algorithmName": "test", "algorithmSettings": [{"name": "test1", "value": "value1"}]},
        "earlyStopping": {"algorithmName": "test", "algorithmSettings": [{"name": "test1", "value": "value1"}]},
        "parameters": [{"name": "lr", "parameterType": "int", "feasibleSpace": {"max": "5", "min": "1"}}],
    }


def succeeded(reason: str = "ExperimentMaxTrialsReached", trials: int = 6) -> ExperimentStatus:
    return ExperimentStatus(trials=trials, conditions=[
        Condition(type="Created", status="True", reason="ExperimentCreated"),
        Condition(type="Running", status="False", reason="ExperimentRunning"),
        Condition(type="Succeeded", status="True", reason=reason)])


def fields(errors) -> list[str]:
    return [e.path for e in errors]


# -- validator_test.go, "Validate Resume Experiment" ------------------------------------


def test_correct_resume_experiment():
    assert update_errors(fake(), fake(), ExperimentStatus()) == []


def test_resume_succeeded_experiment_with_resume_policy_never():
    old = {**fake(), "resumePolicy": "Never"}
    errors = update_errors(old, fake(), succeeded("ExperimentMaxTrialsReached", trials=0))
    # Katib: Invalid spec.resumePolicy, then Forbidden spec (only the budget is editable).
    assert fields(errors) == ["spec.resumePolicy", "spec.resumePolicy"]
    assert str(errors[0]).startswith(NEVER_RESTART)
    assert "cannot be changed on an existing experiment" in str(errors[1])


def test_resume_experiment_with_max_trial_count_not_above_status_trials():
    old = {**fake(), "maxFailedTrialCount": 2}
    errors = update_errors(old, fake(), ExperimentStatus(trials=6))
    assert fields(errors) == ["spec.maxTrialCount"]
    assert str(errors[0]) == "spec.maxTrialCount: must be greater than status.trials count (6 <= 6 trials)"


def test_change_algorithm_name_when_resuming_experiment():
    old = fake()
    old["algorithm"]["algorithmName"] = "not-test"
    assert fields(update_errors(old, fake(), ExperimentStatus())) == ["spec.algorithm"]


# -- the rest of the rule ------------------------------------------------------------------


@pytest.mark.parametrize("status", [succeeded("ExperimentGoalReached"), succeeded("ExperimentSuggestionEndReached"),
                                    ExperimentStatus(trials=6, conditions=[
                                        Condition(type="Failed", status="True", reason="ExperimentFailed")])])
def test_only_a_max_trials_reached_experiment_may_change_once_completed(status):
    new = {**fake(), "maxTrialCount": 10, "resumePolicy": "LongRunning"}
    errors = update_errors({**fake(), "resumePolicy": "LongRunning"}, new, status)
    assert fields(errors) == ["spec.resumePolicy"] and str(errors[0]).startswith(NEVER_RESTART)


@pytest.mark.parametrize("policy", ["LongRunning", "FromVolume"])
def test_a_restartable_experiment_takes_a_larger_budget_or_none(policy):
    old = {**fake(), "resumePolicy": policy}
    assert update_errors(old, {**old, "maxTrialCount": 7}, succeeded()) == []
    unbounded = {k: v for k, v in old.items() if k != "maxTrialCount"}  # Katib restarts it too
    assert update_errors(old, unbounded, succeeded()) == []
    # Any other edit of it leaves maxTrialCount at status.trials: refused.
    assert fields(update_errors(old, {**old, "parallelTrialCount": 1}, succeeded())) == ["spec.maxTrialCount"]
    assert fields(update_errors(old, {**old, "maxTrialCount": 5}, succeeded())) == ["spec.maxTrialCount"]


def test_a_running_experiment_may_change_its_budget_above_its_trials():
    old = fake()
    assert update_errors(old, {**old, "parallelTrialCount": 2, "maxFailedTrialCount": 1}, ExperimentStatus(trials=3)) == []
    assert fields(update_errors(old, {**old, "maxTrialCount": 3}, ExperimentStatus(trials=3))) == ["spec.maxTrialCount"]


def test_an_unchanged_spec_is_never_refused():
    """Katib checks only when the spec changes (so a delete, or a re-apply, passes)."""
    old = {**fake(), "resumePolicy": "Never"}
    assert update_errors(old, copy.deepcopy(old), succeeded("ExperimentGoalReached")) == []


# -- applied: the controller and the API ---------------------------------------------------


def finished(store, tmp_path: Path, **spec) -> Controller:
    ctl = Controller(store, runs_root=tmp_path / "runs", tick=0.05)
    ctl.submit(admit(experiment(maxTrialCount=2, parallelTrialCount=2, **spec)), tmp_path)
    ctl.run("default", "demo")
    return ctl


def test_a_finished_experiment_under_never_refuses_a_budget_edit(store, tmp_path):
    ctl = finished(store, tmp_path)
    with pytest.raises(ValidationError) as info:
        ctl.submit(admit(experiment(maxTrialCount=2, parallelTrialCount=1)), tmp_path)
    assert fields(info.value.errors) == ["spec.resumePolicy", "spec.maxTrialCount"]
    assert store.get_experiment("default", "demo").spec["spec"]["parallelTrialCount"] == 2  # not stored


def test_a_finished_restartable_experiment_restarts_without_a_max_trial_count(store, tmp_path):
    ctl = finished(store, tmp_path, resumePolicy="LongRunning")
    doc = experiment(maxTrialCount=2, parallelTrialCount=2, resumePolicy="LongRunning")
    del doc["spec"]["maxTrialCount"], doc["spec"]["maxFailedTrialCount"]
    _, action = ctl.submit(admit(doc), tmp_path)
    assert action == "restarted"
    status = store.get_experiment("default", "demo").status
    assert [c.type for c in status.conditions if c.status == "True"] == ["Created", "Restarting"]


def test_the_api_answers_422_naming_the_field(sqlite_store, tmp_path):
    pytest.importorskip("fastapi")
    from tests.api_tests.conftest import LiveServer

    with LiveServer(sqlite_store, tmp_path) as live:
        assert live.client.post("/api/v1/namespaces/default/experiments",
                                json=experiment(maxTrialCount=2, parallelTrialCount=2)).status_code == 201
        live.wait_for("default", "demo")
        r = live.client.patch("/api/v1/namespaces/default/experiments/demo/budget", json={"parallelTrialCount": 1})
        assert r.status_code == 422, r.text
        assert [e["field"] for e in r.json()["errors"]] == ["spec.resumePolicy", "spec.maxTrialCount"]
        obj = live.client.get("/apis/kubeflow.org/v1beta1/namespaces/default/experiments/demo").json()
        obj["spec"]["maxTrialCount"] = 5  # the Katib SDK's edit_experiment_budget: the whole object
        r = live.client.patch("/apis/kubeflow.org/v1beta1/namespaces/default/experiments/demo", json=obj,
                              headers={"content-type": "application/merge-patch+json"})
        assert r.status_code == 422 and NEVER_RESTART in r.text, r.text
