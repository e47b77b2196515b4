"""A controller asked to stop (Ctrl-C, SIGTERM, a server shutting down) with trials
running: what it stops says so in the store, and what had already ended is collected by
the next run, not run a second time."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from katib.controller import Controller, admit
from tests.conftest import experiment, python_command
from trials import LocalExecutor
from trials._executor import TrialJob

MARKED = "import os, time; open(os.path.join({markers!r}, os.environ['KATIB_TRIAL_NAME'] + '.' + str(os.getpid())), 'w').close(); {rest}"


class _StopsOnceTheTrialHasEnded(LocalExecutor):
    """Launches a trial, waits until its process has exited, and asks the controller to
    stop before any step has followed it: the trial ended just before the Ctrl-C."""

    def __init__(self, stop: threading.Event) -> None:
        super().__init__()
        self.stop_event = stop

    def launch(self, job: TrialJob) -> dict[str, Any]:
        handle = super().launch(job)
        proc = self._procs[handle["pid"]]
        deadline = time.monotonic() + 30
        while proc.code is None and time.monotonic() < deadline:
            self._check(proc)
            time.sleep(0.02)
        assert proc.code == 0
        self.stop_event.set()
        return handle


def test_a_trial_that_ended_just_before_the_stop_is_collected_by_the_next_run_not_run_again(store, tmp_path: Path):
    markers = tmp_path / "markers"
    markers.mkdir()
    code = MARKED.format(markers=str(markers), rest="print('loss=${trialParameters.x}')")
    doc = admit(experiment(command=python_command(code), maxTrialCount=1, parallelTrialCount=1))
    stop = threading.Event()
    ctl = Controller(store, executor=_StopsOnceTheTrialHasEnded(stop), runs_root=tmp_path / "runs", tick=0.05)
    rec, _ = ctl.submit(doc, tmp_path)
    ctl.run(rec.namespace, rec.name, stop=stop)
    (t,) = store.list_trials(rec.id)
    assert t.state == "Running" and not (t.handle or {}).get("interrupted")  # left to be collected

    status = Controller(store, runs_root=tmp_path / "runs", tick=0.05).run(rec.namespace, rec.name).to_dict()
    assert status["trialsSucceeded"] == 1
    (t,) = store.list_trials(rec.id)
    assert t.state == "Succeeded" and t.attempt == 0
    assert len(list(markers.iterdir())) == 1  # it ran once
    assert float(t.observation["loss"]["latest"]) == float(t.assignments[0]["value"])


def test_trials_stopped_by_a_stop_wait_as_created_saying_so_and_run_again_on_resume(store, tmp_path: Path):
    markers = tmp_path / "markers"
    markers.mkdir()
    code = MARKED.format(markers=str(markers), rest="time.sleep(60)")
    doc = admit(experiment(command=python_command(code), maxTrialCount=2, parallelTrialCount=2))
    ctl = Controller(store, runs_root=tmp_path / "runs", tick=0.05)
    rec, _ = ctl.submit(doc, tmp_path)
    stop = threading.Event()

    def stop_once_both_run() -> None:
        deadline = time.monotonic() + 30
        while len(list(markers.iterdir())) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        stop.set()

    threading.Thread(target=stop_once_both_run, daemon=True).start()
    ctl.run(rec.namespace, rec.name, stop=stop)
    trials = store.list_trials(rec.id)
    # Nothing runs any more, and the store says so: not Running, but waiting to run again.
    assert [t.state for t in trials] == ["Created", "Created"]
    for t in trials:
        running = next(c for c in t.conditions if c.type == "Running")
        assert (running.status, running.reason) == ("False", "TrialInterrupted")
        assert "next run runs it again" in (running.message or "")
        # and `katib get trials` says why it waits (its WHY column was empty beside Created)
        from katib.cli._app import _why

        assert _why(t).startswith("TrialInterrupted: ") and "next run runs it again" in _why(t)
    status = store.get_experiment(rec.namespace, rec.name).status.to_dict()
    assert not status.get("runningTrialList") and len(status.get("pendingTrialList") or []) == 2
