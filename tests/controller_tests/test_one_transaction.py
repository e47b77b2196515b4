"""Issue 11: the algorithm's state and the trials it planned are stored in one
transaction, so a crash between the two cannot leave a plan whose trials were never
stored (hyperband then waited for members that did not exist, and ended early)."""

from __future__ import annotations

import pytest

from katib.controller import AskTell, Controller, admit
from katib.store import Store
from tests.conftest import python_command
from tests.suggestion_tests.test_hyperband import hb_doc

CODE = "print('loss=' + str(float('${trialParameters.x}') / int('${trialParameters.epochs}')))"


class Killed(BaseException):
    """What a kill -9 looks like from inside: nothing after it runs."""


def _doc():
    return hb_doc(r_l="3", parallel=3, command=python_command(CODE), max_trials=20)


def _run(store: Store, tmp_path, name: str) -> tuple[str, list[str]]:
    ctl = Controller(store, runs_root=tmp_path / name, tick=0.05)
    rec, _ = ctl.submit(admit(_doc()), tmp_path)
    status = ctl.run(rec.namespace, rec.name).to_dict()
    reason = [c["reason"] for c in status["conditions"] if c["status"] == "True"][-1]
    return reason, [t.parameters()["epochs"] for t in store.list_trials(rec.id)]


@pytest.mark.parametrize("crash_at", [1, 2])
def test_a_crash_between_plan_and_trials_loses_nothing(sqlite_store, tmp_path, monkeypatch, crash_at):
    expected = _run(Store(str(tmp_path / "reference.db")), tmp_path, "reference")
    writes = {"with new trials": 0}
    original = Store.write_trials

    def write_then_die(self, save=(), new=(), samples=(), **kw):
        if new:
            writes["with new trials"] += 1
            if writes["with new trials"] == crash_at:
                raise Killed()
        return original(self, save, new, samples, **kw)

    monkeypatch.setattr(Store, "write_trials", write_then_die)
    ctl = Controller(sqlite_store, runs_root=tmp_path / "runs", tick=0.05)
    rec, _ = ctl.submit(admit(_doc()), tmp_path)
    with pytest.raises(Killed):
        ctl.run(rec.namespace, rec.name)
    monkeypatch.setattr(Store, "write_trials", original)
    # the restart carries on from exactly what was stored
    status = Controller(sqlite_store, runs_root=tmp_path / "runs", tick=0.05).run(rec.namespace, rec.name).to_dict()
    reason = [c["reason"] for c in status["conditions"] if c["status"] == "True"][-1]
    epochs = [t.parameters()["epochs"] for t in sqlite_store.list_trials(rec.id)]
    assert (reason, epochs) == expected


def test_ask_and_tell_store_the_plan_with_its_trials(sqlite_store, monkeypatch):
    doc = hb_doc(r_l="3", parallel=3, max_trials=20)
    doc["spec"]["executor"] = "external"
    del doc["spec"]["trialTemplate"]
    exp = admit(doc)
    sqlite_store.create_experiment(exp.namespace, exp.name, exp.model_dump(by_alias=True, exclude_none=True, mode="json"),
                                   {"conditions": []}, "/tmp")
    at = AskTell(sqlite_store)
    original = Store.write_trials

    def die(self, save=(), new=(), samples=(), **kw):
        if new:
            raise Killed()
        return original(self, save, new, samples, **kw)

    monkeypatch.setattr(Store, "write_trials", die)
    with pytest.raises(Killed):
        at.ask(exp.namespace, exp.name, 3)
    monkeypatch.setattr(Store, "write_trials", original)
    rec = sqlite_store.get_experiment(exp.namespace, exp.name)
    assert not sqlite_store.algorithm_state(rec.id)  # the plan went with its trials
    asked = AskTell(sqlite_store).ask(exp.namespace, exp.name, 3)
    assert len(asked) == 3
