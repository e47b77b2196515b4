"""The status's counts and trial lists are derived from the trial rows when read, never
stored: the controller writes the status only when what the rows do not say changes
(conditions, times, the optimal trial), not each time a trial starts or ends."""

from __future__ import annotations

import json

import sqlalchemy as sa

from katib.controller import Controller, admit
from katib.store import TrialRecord
from tests.conftest import experiment, python_command


def _stored(store, exp_id: int) -> dict:
    from katib.store._schema import experiments

    with store._engine.connect() as conn:
        return json.loads(conn.execute(sa.select(experiments.c.status).where(experiments.c.id == exp_id)).scalar_one())


def test_counts_and_lists_are_derived_when_read(store, tmp_path):
    rec = store.create_experiment("default", "demo", experiment(), {"trials": 99, "trialsSucceeded": 7}, str(tmp_path))
    store.add_trials([TrialRecord(id=0, experiment_id=rec.id, name=f"demo-{i}", state=state, assignments=[])
                      for i, state in enumerate(("Succeeded", "Running", "Succeeded"))])
    for status in (store.get_experiment("default", "demo").status.to_dict(), store.list_experiments()[0].status.to_dict(),
                   store.get_experiment_by_id(rec.id).status.to_dict()):
        assert status["trials"] == 3 and status["trialsSucceeded"] == 2 and status["trialsRunning"] == 1
        assert status["succeededTrialList"] == ["demo-0", "demo-2"] and status["runningTrialList"] == ["demo-1"]
        assert status["trialsFailed"] == 0 and "failedTrialList" not in status
    assert "trials" not in _stored(store, rec.id)


def test_the_controller_does_not_rewrite_the_status_as_trials_come_and_go(store, tmp_path, monkeypatch):
    writes = []
    update = store.update_experiment

    def counting(exp_id, **fields):
        if "status" in fields:
            writes.append(fields["status"])
        return update(exp_id, **fields)

    monkeypatch.setattr(store, "update_experiment", counting)
    doc = experiment(command=python_command("print('loss=0.5')"), maxTrialCount=6, parallelTrialCount=2)
    ctl = Controller(store, runs_root=tmp_path / "runs", tick=0.05)
    rec, _ = ctl.submit(admit(doc), tmp_path)
    ctl.run(rec.namespace, rec.name)
    status = store.get_experiment(rec.namespace, rec.name).status.to_dict()
    assert status["trials"] == 6 and status["trialsSucceeded"] == 6 and len(status["succeededTrialList"]) == 6
    assert status["conditions"][-1]["reason"] == "ExperimentMaxTrialsReached"
    stored = _stored(store, rec.id)
    assert not {"trials", "trialsSucceeded", "succeededTrialList"} & set(stored)
    assert stored["currentOptimalTrial"]["bestTrialName"]
    # Running, the first optimal trial, the end: not one write per launch or finish.
    assert len(writes) <= 4, [sorted(w) for w in writes]
