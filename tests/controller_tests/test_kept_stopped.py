"""A user's stop is kept: a server that starts takes up every unfinished experiment except
one a user stopped (``katib stop``, the API's or the viewer's Stop), which stays stopped
until it is resumed or run again. A server's own shutdown is not a user's stop."""

from __future__ import annotations

import time

from katib.controller import ExperimentManager, admit
from tests.conftest import experiment, python_command

SLOW = python_command("import time; time.sleep(30); print('loss=0.1')")


def _running_trial(store, name: str) -> None:
    deadline = time.monotonic() + 30
    while not any(t.state == "Running" for t in store.list_trials(store.get_experiment("default", name).id)):
        assert time.monotonic() < deadline, "no trial started"
        time.sleep(0.05)


def test_a_stopped_experiment_stays_stopped_when_a_server_starts_and_resume_runs_it(sqlite_store, tmp_path):
    first = ExperimentManager(sqlite_store, tmp_path / "runs", tick=0.05)
    for name in ("stopped", "interrupted"):
        first.submit(admit(experiment(name=name, command=SLOW, maxTrialCount=2, parallelTrialCount=1)), tmp_path)
        _running_trial(sqlite_store, name)
    first.stop("default", "stopped")  # the user's stop
    assert sqlite_store.get_experiment("default", "stopped").stopped_at is not None
    first.shutdown()  # the server's own end: "interrupted" is not a user's stop
    assert sqlite_store.get_experiment("default", "interrupted").stopped_at is None

    second = ExperimentManager(sqlite_store, tmp_path / "runs", tick=0.05)
    try:
        assert second.resume_all() == ["default/interrupted"]
        assert second.is_running("default", "interrupted") and not second.is_running("default", "stopped")
        # Resuming is running it again: the mark goes, and the next server start takes it up too.
        assert second.resume("default", "stopped") is None
        assert second.is_running("default", "stopped")
        assert sqlite_store.get_experiment("default", "stopped").stopped_at is None
    finally:
        second.shutdown()
    third = ExperimentManager(sqlite_store, tmp_path / "runs", tick=0.05)
    try:
        assert sorted(third.resume_all()) == ["default/interrupted", "default/stopped"]
    finally:
        third.shutdown()
