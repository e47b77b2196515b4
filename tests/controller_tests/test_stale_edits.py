"""An edit of a stored experiment is made from what was read: a patch that another
server's edit overtook is refused as stale (and made again by the API), while a whole
experiment applied again replaces what it finds, whatever came in between."""

from __future__ import annotations

from pathlib import Path

import pytest

from katib.controller import Controller, admit
from katib.errors import StaleEditError
from katib.spec import Experiment
from katib.store import Store
from tests.conftest import experiment


def _admitted(**spec: object) -> Experiment:
    return admit(experiment(name="e", command=["sh", "-c", "echo loss=${trialParameters.x}"], **spec))


def test_a_patch_made_from_a_replaced_spec_is_stale_and_a_file_applied_is_not(tmp_path: Path):
    store = Store(str(tmp_path / "katib.db"))
    try:
        controller = Controller(store)
        rec, action = controller.submit(_admitted(maxTrialCount=3), tmp_path)
        assert action == "created"
        read = store.get_experiment("default", "e").spec  # what a patch was made from
        labelled = dict(read, metadata={**read["metadata"], "labels": {"team": "a"}})
        assert store.update_experiment(rec.id, if_spec=read, spec=labelled)  # another server's edit

        with pytest.raises(StaleEditError):
            controller.submit(_admitted(maxTrialCount=5), tmp_path, based_on=read)
        assert store.get_experiment("default", "e").spec["spec"]["maxTrialCount"] == 3

        # the stored spec changes between this submit's read and its write: it reads again
        real = store.update_experiment
        raced = []

        def racing(exp_id: int, **fields: object) -> bool:
            if fields.get("if_spec") is not None and not raced:
                raced.append(True)
                now = store.get_experiment("default", "e").spec
                real(exp_id, spec=dict(now, metadata={**now["metadata"], "labels": {"team": "b"}}))
            return real(exp_id, **fields)  # type: ignore[arg-type]

        store.update_experiment = racing  # type: ignore[method-assign]
        _, action = controller.submit(_admitted(maxTrialCount=6), tmp_path)
        assert raced and action == "resumed"
        assert store.get_experiment("default", "e").spec["spec"]["maxTrialCount"] == 6
    finally:
        store.close()


def test_a_budget_edit_made_while_it_ran_and_stored_after_it_ended_restarts_it(tmp_path: Path):
    """The edit read a running experiment; it ended (ExperimentMaxTrialsReached) before the
    edit's write. The write is refused as stale, made again for the ended experiment, and
    restarts it (resumePolicy LongRunning), where before it was stored as a "resumed" edit
    of a run that was gone: the raised budget sat under a Succeeded experiment."""
    store = Store(str(tmp_path / "katib.db"))
    try:
        controller = Controller(store)
        rec, _ = controller.submit(_admitted(maxTrialCount=3, resumePolicy="LongRunning"), tmp_path)
        real = store.update_experiment
        ended: list[bool] = []

        def racing(exp_id: int, **fields: object) -> bool:
            if fields.get("if_unfinished") and not ended:  # the run ends between the read and the write
                ended.append(True)
                real(exp_id, status={"conditions": [
                    {"type": "Created", "status": "True", "reason": "ExperimentCreated"},
                    {"type": "Running", "status": "False", "reason": "ExperimentRunning"},
                    {"type": "Succeeded", "status": "True", "reason": "ExperimentMaxTrialsReached"}]})
            return real(exp_id, **fields)  # type: ignore[arg-type]

        store.update_experiment = racing  # type: ignore[method-assign]
        _, action = controller.submit(_admitted(maxTrialCount=5, resumePolicy="LongRunning"), tmp_path)
        assert ended and action == "restarted"
        conditions = {c.type: c.status for c in store.get_experiment("default", "e").status.conditions}
        assert conditions.get("Restarting") == "True" and "Succeeded" not in conditions
    finally:
        store.close()


def test_a_run_takes_a_raised_budget_it_was_not_told_of_before_it_ends(tmp_path: Path):
    """Another server stored a raised budget while this one's run went on, and its request
    to apply it came after the run had ended (or never came): the run reads the stored
    budget once before ending on ExperimentMaxTrialsReached, and runs on under it."""
    import threading
    import time

    store = Store(str(tmp_path / "katib.db"))
    try:
        controller = Controller(store)
        go = tmp_path / "go"  # the trials wait for it: the edit lands while the first one runs
        doc = experiment(name="e", command=["sh", "-c", f"while [ ! -e {go} ]; do sleep 0.05; done; "
                                                        "echo loss=${trialParameters.x}"],
                         maxTrialCount=2, parallelTrialCount=1)
        rec, _ = controller.submit(admit(doc), tmp_path)
        runner = threading.Thread(target=controller.run, args=("default", "e"), daemon=True)
        runner.start()
        deadline = time.monotonic() + 30
        while not store.list_trials(rec.id):
            assert time.monotonic() < deadline, "no trial started"
            time.sleep(0.02)
        raised = store.get_experiment("default", "e").spec
        raised["spec"]["maxTrialCount"] = 4
        store.update_experiment(rec.id, spec=raised)  # stored elsewhere; this run is not told
        go.touch()
        runner.join(60)
        assert not runner.is_alive()
        done = store.get_experiment("default", "e")
        assert [t.state for t in store.list_trials(rec.id)] == ["Succeeded"] * 4
        assert any(c.reason == "ExperimentMaxTrialsReached" and c.status == "True" for c in done.status.conditions)
    finally:
        store.close()


def test_a_budget_told_to_the_run_as_its_last_trial_ends_is_taken(tmp_path: Path, monkeypatch):
    """The edit is stored and told to the run (as a server's own submit does) in the very
    step that fills maxTrialCount: the run, about to end, takes it rather than ending
    under the old one. (A first version left it for a next step that never came.)"""
    from katib.controller._run import ExperimentRun

    store = Store(str(tmp_path / "katib.db"))
    try:
        controller = Controller(store)
        rec, _ = controller.submit(_admitted(maxTrialCount=2, parallelTrialCount=1), tmp_path)
        follow = ExperimentRun._follow_running
        told: list[bool] = []

        def edit_as_it_fills(run: ExperimentRun) -> None:
            follow(run)
            if not told and run.tally.counts(budget=True).completed >= 2:
                told.append(True)
                spec = store.get_experiment("default", "e").spec
                spec["spec"]["maxTrialCount"] = 4
                store.update_experiment(rec.id, spec=spec)
                run.update_budget(spec["spec"])

        monkeypatch.setattr(ExperimentRun, "_follow_running", edit_as_it_fills)
        controller.run("default", "e")
        assert told
        assert [t.state for t in store.list_trials(rec.id)] == ["Succeeded"] * 4
    finally:
        store.close()


def test_a_budget_stored_between_the_runs_last_read_and_its_end_is_taken(tmp_path: Path, monkeypatch):
    """Another server's edit lands after the run read the budget for the last time and
    before it wrote its end: the edit was stored over a running experiment (so answered as
    taken), and the run used to write Succeeded over it, leaving the raised budget unused.
    The end is written only over the spec that was read; here it is made again, and the run
    goes on to the raised budget."""
    from katib.controller._run import ExperimentRun

    store = Store(str(tmp_path / "katib.db"))
    try:
        controller = Controller(store)
        rec, _ = controller.submit(_admitted(maxTrialCount=2, parallelTrialCount=1), tmp_path)
        read = ExperimentRun._budget_raised
        edited: list[bool] = []

        def edit_after_the_read(run: ExperimentRun) -> bool:
            raised = read(run)
            if not edited:
                edited.append(True)
                now = store.get_experiment("default", "e").spec  # an edit's write, as the API's
                assert store.update_experiment(rec.id, if_spec=now, if_unfinished=True,
                                               spec=now | {"spec": {**now["spec"], "maxTrialCount": 4}})
            return raised

        monkeypatch.setattr(ExperimentRun, "_budget_raised", edit_after_the_read)
        controller.run("default", "e")
        assert edited
        assert [t.state for t in store.list_trials(rec.id)] == ["Succeeded"] * 4
        done = store.get_experiment("default", "e").status
        assert [(c.type, c.status) for c in done.conditions] == [
            ("Created", "True"), ("Running", "False"), ("Succeeded", "True")]
    finally:
        store.close()


def test_a_label_stored_between_the_runs_last_read_and_its_end_does_not_hold_the_end(tmp_path: Path, monkeypatch):
    """The same window, for an edit that leaves the budget: the end's write is refused
    once, the budget is read again, and the experiment ends under it."""
    from katib.controller._run import ExperimentRun

    store = Store(str(tmp_path / "katib.db"))
    try:
        controller = Controller(store)
        rec, _ = controller.submit(_admitted(maxTrialCount=2, parallelTrialCount=1), tmp_path)
        read = ExperimentRun._budget_raised
        calls: list[bool] = []

        def label_after_the_read(run: ExperimentRun) -> bool:
            raised = read(run)
            calls.append(raised)
            if len(calls) == 1:
                now = store.get_experiment("default", "e").spec
                assert store.update_experiment(rec.id, if_spec=now, if_unfinished=True,
                                               spec=now | {"metadata": {**now["metadata"], "labels": {"team": "a"}}})
            return raised

        monkeypatch.setattr(ExperimentRun, "_budget_raised", label_after_the_read)
        controller.run("default", "e")
        assert calls == [False, False]
        done = store.get_experiment("default", "e")
        assert [t.state for t in store.list_trials(rec.id)] == ["Succeeded"] * 2
        assert done.spec["metadata"]["labels"] == {"team": "a"}
        assert any(c.reason == "ExperimentMaxTrialsReached" and c.status == "True" for c in done.status.conditions)
    finally:
        store.close()
