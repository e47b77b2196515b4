"""The summary of an ended experiment is kept until one of its trials is written again
(issue 15: reopening a page of 100,000 trials must not read them all again), and never
served stale. Ended is what the conditions say (Succeeded or Failed), not a
``completionTime``: a restarted experiment keeps its previous end's, as Katib's does
(experiment_controller.go, ``MarkExperimentStatusRestarting`` leaves it)."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi")
from api import _summary  # noqa: E402
from tests.api_tests.test_summary import _seed  # noqa: E402

ENDED = "2026-01-01T00:00:00Z"
CREATED = {"type": "Created", "status": "True", "reason": "ExperimentCreated", "message": "Experiment is created"}
RAN = {"type": "Running", "status": "False", "reason": "ExperimentRunning", "message": "Experiment is running"}
SUCCEEDED = {"type": "Succeeded", "status": "True", "reason": "ExperimentMaxTrialsReached",
             "message": "Experiment has succeeded because max trial count has reached"}
RESTARTING = {"type": "Restarting", "status": "True", "reason": "ExperimentRestarting",
              "message": "Experiment is restarted"}
RUNNING = {**RAN, "status": "True"}


def _with_status(store, rec, conditions):
    store.update_experiment(rec.id, status={**rec.status.to_dict(), "completionTime": ENDED, "conditions": conditions})
    return store.get_experiment(rec.namespace, rec.name)


def test_an_ended_experiments_summary_is_kept_until_a_trial_changes(sqlite_store, monkeypatch):
    reads: list[int] = []
    real = _summary.summary_columns
    monkeypatch.setattr(_summary, "summary_columns", lambda store, exp_id, *args, updated_since=None:
                        reads.append(exp_id) or real(store, exp_id, *args, updated_since=updated_since))
    rec = _with_status(sqlite_store, _seed(sqlite_store), [CREATED, RAN, SUCCEEDED])
    first = _summary.experiment_summary(sqlite_store, rec)
    again = _summary.experiment_summary(sqlite_store, rec)
    assert len(reads) == 1 and again["columns"] == first["columns"] and again["curves"] == first["curves"]
    assert again["status"] == rec.status.to_dict()  # what is not kept is read fresh

    # A trial written (its observation changed): the next summary reads the trials again.
    t = sqlite_store.list_trials(rec.id)[3]
    t.observation = {"loss": {"min": "9.5", "max": "9.5", "latest": "9.5"}}
    sqlite_store.write_trials(save=[t])
    fresh = _summary.experiment_summary(sqlite_store, rec)
    assert len(reads) == 2 and fresh["columns"]["metrics"]["loss"][3] == 9.5

    # A running experiment is never kept: every full summary reads.
    running = sqlite_store.get_experiment(rec.namespace, rec.name)
    running.status.conditions = [c for c in running.status.conditions if c.type != "Succeeded"]
    _summary.experiment_summary(sqlite_store, running)
    _summary.experiment_summary(sqlite_store, running)
    assert len(reads) == 4


def test_the_kept_columns_are_encoded_once_and_the_answer_is_the_same_json(sqlite_store):
    import json

    rec = _with_status(sqlite_store, _seed(sqlite_store), [CREATED, RAN, SUCCEEDED])
    result = _summary.experiment_summary(sqlite_store, rec)
    result = _summary.experiment_summary(sqlite_store, rec)  # served from what is kept
    result["active"] = False  # what the route adds
    assert json.loads(_summary.encode(result)) == result
    assert _summary._encoded[id(result["columns"])][0] is result["columns"]
    again = _summary.experiment_summary(sqlite_store, rec)
    again["status"] = {"changed": True}
    assert json.loads(_summary.encode(again)) == again  # the fresh parts are fresh
    running = dict(result, columns={"name": ["x"]}, curves=[])
    assert json.loads(_summary.encode(running)) == running  # not kept: encoded whole


@pytest.mark.parametrize("conditions", [[CREATED, RAN, RESTARTING], [CREATED, RESTARTING, RUNNING]],
                         ids=["restarting", "running-again"])
def test_a_restarted_experiment_is_never_kept_though_it_keeps_its_completion_time(sqlite_store, monkeypatch,
                                                                                  conditions):
    reads: list[int] = []
    real = _summary.summary_columns
    monkeypatch.setattr(_summary, "summary_columns", lambda store, exp_id, *args, updated_since=None:
                        reads.append(exp_id) or real(store, exp_id, *args, updated_since=updated_since))
    rec = _with_status(sqlite_store, _seed(sqlite_store), conditions)
    assert rec.status.completion_time == ENDED
    _summary.experiment_summary(sqlite_store, rec)
    _summary.experiment_summary(sqlite_store, rec)
    assert len(reads) == 2
