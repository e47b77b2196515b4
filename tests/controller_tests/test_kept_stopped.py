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


def test_servers_on_one_database_keep_a_stop_too(tmp_path):
    """Stopped through the server that does not run it: marked; then neither the holder's
    heartbeat (an experiment it holds but does not run) nor a server adopting a lapsed
    one's experiments starts it again."""
    from katib.store import Leases, Store

    store = Store(str(tmp_path / "katib.db"))
    servers = []
    for replica in ("a", "b"):
        manager = ExperimentManager(store, tmp_path / "runs", tick=0.05)
        manager.enable_replicas(1.5, interval=0.2, replica_id=replica)
        servers.append(manager)
    a, b = servers
    try:
        a.submit(admit(experiment(name="held", command=SLOW, maxTrialCount=2, parallelTrialCount=1)), tmp_path)
        _running_trial(store, "held")
        b.stop("default", "held")  # asked of the server that runs it, through the database
        rec = store.get_experiment("default", "held")
        assert rec.stopped_at is not None and rec.owner is None
        # Held by b but not running (as after a hand-over): b's heartbeat lets it go, stopped.
        store.update_experiment(rec.id, owner="b")
        deadline = time.monotonic() + 10
        while store.get_experiment("default", "held").owner is not None:
            assert time.monotonic() < deadline, "b kept holding a stopped experiment"
            time.sleep(0.05)
        # Held by a replica whose lease lapsed: the others let it go, stopped, rather than adopt it.
        leases = Leases(store)
        leases.register("gone", "elsewhere", 1)
        leases.expire("gone")
        store.update_experiment(rec.id, owner="gone")
        deadline = time.monotonic() + 10
        while store.get_experiment("default", "held").owner is not None:
            assert time.monotonic() < deadline, "the lapsed server's stopped experiment was not let go"
            time.sleep(0.05)
        time.sleep(0.5)  # a heartbeat or two more
        assert not a.is_running("default", "held") and not b.is_running("default", "held")
        assert store.get_experiment("default", "held").stopped_at is not None
    finally:
        for manager in servers:
            manager.shutdown()


def test_a_users_stop_is_stored_before_its_trials_are_stopped(sqlite_store, tmp_path, monkeypatch):
    """Write before acting: a server killed after stopping the trials and before marking
    the stop ran the experiment again when it started, its stopped trials with it."""
    from katib.controller._run import ExperimentRun

    seen: list = []
    interrupt = ExperimentRun._interrupt

    def noting(run):  # what a server killed right here would find when it starts again
        seen.append(sqlite_store.get_experiment("default", "demo").stopped_at)
        return interrupt(run)

    monkeypatch.setattr(ExperimentRun, "_interrupt", noting)
    manager = ExperimentManager(sqlite_store, tmp_path / "runs", tick=0.05)
    try:
        manager.submit(admit(experiment(command=SLOW, maxTrialCount=2, parallelTrialCount=1)), tmp_path)
        _running_trial(sqlite_store, "demo")
        manager.stop("default", "demo")
    finally:
        manager.shutdown()
    assert seen and seen[0] is not None, "the trials were stopped before the stop was stored"
    assert sqlite_store.get_experiment("default", "demo").stopped_at is not None
