"""Two managers (servers) on one database, in one process: a budget edit sent to the one
that does not run the experiment reaches the one that does, whose progress the other's
event stream relays; a server that stops renewing its lease lets its experiments go,
touching neither the store nor their trials, and the other adopts them with their running
trials."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from katib.controller import ExperimentManager
from katib.spec import admit
from katib.store import LeaseLost, Store
from tests.conftest import experiment

TTL = 1.5
TRIAL = 'echo start >> "{markers}/$KATIB_TRIAL_NAME"; sleep 1; echo "loss=${{trialParameters.x}}"'
# Runs (reporting, so its row is written) until the test lets it end.
HELD = ('echo start >> "{markers}/$KATIB_TRIAL_NAME"; while [ ! -e "{go}" ]; do echo loss=0.9; sleep 0.3; done; '
        'echo "loss=${{trialParameters.x}}"')


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"{what}: not within {timeout:g} s")


def _ended(status) -> bool:
    return bool(status.get("completionTime") if isinstance(status, dict) else status.completion_time)


def _manager(store: Store, tmp_path: Path, replica: str) -> ExperimentManager:
    manager = ExperimentManager(store, tmp_path / "runs", tick=0.1)
    manager.enable_replicas(TTL, interval=0.2, replica_id=replica)
    return manager


def test_a_stalled_server_lets_go_and_the_other_adopts(tmp_path: Path):
    store = Store(str(tmp_path / "katib.db"))
    markers = tmp_path / "markers"
    markers.mkdir()
    go = tmp_path / "go"
    doc = experiment(command=["sh", "-c", HELD.format(markers=markers, go=go)], maxTrialCount=3,
                     parallelTrialCount=2, maxFailedTrialCount=0)
    a = _manager(store, tmp_path, "a")
    b = _manager(store, tmp_path, "b")
    events: list[dict] = []
    b.subscribe(events.append)  # b's event stream tells of what a runs (its trials' starts), at b's heartbeats
    try:
        a.submit(admit(doc), tmp_path)  # a holds the fewest (a tie): a runs it
        _wait(lambda: store.get_experiment("default", "demo").owner == "a", 5, "a claims it")
        _wait(lambda: len(store.list_trials(store.get_experiment("default", "demo").id, states=["Running"])) == 2,
              15, "two trials run")
        _wait(lambda: b.is_running("default", "demo"), 2, "b sees it run (at its next heartbeat)")
        assert not b.runs_here("default", "demo")
        _wait(lambda: any(e["experiment"] == "demo" and e.get("server") == "a" for e in events), 10, "b relays")
        doc["spec"]["maxTrialCount"] = 5
        b.submit(admit(doc), tmp_path)  # sent to b, applied by a's run
        assert not b.runs_here("default", "demo")

        assert a.replica is not None
        a.replica.close()  # a stalls: no more heartbeats, its run carries on alone
        lease = a.replica.lease
        _wait(lambda: not lease.held(), TTL, "a's lease lapses (as a sees it)")
        with pytest.raises(LeaseLost):
            lease.check(wait=0)
        _wait(lambda: store.get_experiment("default", "demo").owner == "b", 10, "b adopts the experiment")
        _wait(lambda: not a.runs_here("default", "demo"), 10, "a's run lets go")
        go.touch()
        _wait(lambda: _ended(store.get_experiment("default", "demo").status), 30, "the experiment ends")
        trials = store.list_trials(store.get_experiment("default", "demo").id)
        assert [t.state for t in trials] == ["Succeeded"] * 5, [(t.name, t.state, t.conditions) for t in trials]
        assert all(t.attempt == 0 for t in trials)
        starts = {p.name: len(p.read_text().splitlines()) for p in markers.iterdir()}
        assert starts == {t.name: 1 for t in trials}  # none run twice, none killed by a
        assert "a" not in a.errors and not a.errors  # letting go is no failure
        # The two a left running were followed on by b, and their conditions say so to the end.
        followed = [t.name for t in trials if any(
            c.type == "Running" and "followed on" in (c.message or "") for c in t.conditions)]
        assert len(followed) == 2, [t.conditions for t in trials]
    finally:
        b.shutdown()
        a.shutdown()
        store.close()


def test_a_server_that_stops_hands_its_experiments_over_with_their_trials(tmp_path: Path):
    store = Store(str(tmp_path / "katib.db"))
    markers = tmp_path / "markers"
    markers.mkdir()
    doc = experiment(command=["sh", "-c", TRIAL.format(markers=markers)], maxTrialCount=2, parallelTrialCount=2,
                     maxFailedTrialCount=0)
    a = _manager(store, tmp_path, "a")
    b = _manager(store, tmp_path, "b")
    try:
        a.submit(admit(doc), tmp_path)
        _wait(lambda: len(store.list_trials(store.get_experiment("default", "demo").id, states=["Running"])) == 2,
              15, "two trials run")
        stopped = time.monotonic()
        a.shutdown()  # b is live: a lets go of its runs, trials running, and its lease lapses at once
        _wait(lambda: store.get_experiment("default", "demo").owner == "b", TTL, "b adopts at its next beat")
        assert time.monotonic() - stopped < TTL
        _wait(lambda: _ended(store.get_experiment("default", "demo").status), 30, "the experiment ends")
        trials = store.list_trials(store.get_experiment("default", "demo").id)
        assert [(t.state, t.attempt) for t in trials] == [("Succeeded", 0)] * 2
        assert {p.name: len(p.read_text().splitlines()) for p in markers.iterdir()} == {t.name: 1 for t in trials}
    finally:
        b.shutdown()
        store.close()


def test_an_experiment_placed_as_the_lease_lapses_still_runs(tmp_path: Path):
    """Placed on a server whose lease lapses before its run claims it: the experiment is
    held from the placement on, so the server's next heartbeat starts it (it was left with
    no holder, never to run)."""
    store = Store(str(tmp_path / "katib.db"))
    a = _manager(store, tmp_path, "a")
    try:
        assert a.replica is not None
        a.replica.lease.revoked = True  # as a lapse seen here leaves it: its runs let go at their first write
        a.submit(admit(experiment(maxTrialCount=1, parallelTrialCount=1)), tmp_path)
        assert store.get_experiment("default", "demo").owner == "a"
        _wait(lambda: _ended(store.get_experiment("default", "demo").status), 15, "the experiment runs to its end")
    finally:
        a.shutdown()
        store.close()


def test_a_launch_cut_short_before_it_started_anything_is_no_attempt(tmp_path: Path):
    """A trial stored Created whose launch made its folder but started nothing (its
    server's lease lapsed at the launch, or it was killed there) runs as its first attempt."""
    from katib.controller import Controller
    from katib.names import RunLayout
    from katib.spec import EXPERIMENT_LABEL
    from katib.store import TrialRecord

    store = Store(str(tmp_path / "katib.db"))
    ctl = Controller(store, runs_root=tmp_path / "runs", tick=0.05)
    rec, _ = ctl.submit(admit(experiment(maxTrialCount=1, parallelTrialCount=1)), tmp_path)
    t = TrialRecord(id=0, experiment_id=rec.id, name="demo-cut", state="Created",
                    assignments=[{"name": "x", "value": "0.5"}], labels={EXPERIMENT_LABEL: "demo"},
                    created_at=time.time())
    store.add_trials([t])
    (RunLayout(tmp_path / "runs").trial("default", "demo", "demo-cut") / "artifacts").mkdir(parents=True)
    ctl.run("default", "demo")
    assert [(t.name, t.state, t.attempt) for t in store.list_trials(rec.id)] == [("demo-cut", "Succeeded", 0)]
    store.close()


def test_a_retry_sent_to_the_other_server_is_made_by_the_one_that_runs_it(tmp_path: Path):
    store = Store(str(tmp_path / "katib.db"))
    # Each x fails the first time it runs and succeeds the second.
    flaky = (f'm="{tmp_path}/${{trialParameters.x}}"; sleep 1; if [ -e "$m" ]; then echo "loss=${{trialParameters.x}}"; '
             'else touch "$m"; exit 3; fi')
    doc = experiment(command=["sh", "-c", flaky], maxTrialCount=3, parallelTrialCount=1, maxFailedTrialCount=3)
    a = _manager(store, tmp_path, "a")
    b = _manager(store, tmp_path, "b")
    try:
        a.submit(admit(doc), tmp_path)
        _wait(lambda: store.get_experiment("default", "demo").owner == "a", 5, "a claims it")
        exp_id = store.get_experiment("default", "demo").id
        _wait(lambda: store.list_trials(exp_id, states=["Failed"]), 15, "a trial fails")
        first = store.list_trials(exp_id, states=["Failed"])[0].name
        assert b.retry_trial("default", "demo", first) == "asked"  # b does not run it: it asks a
        _wait(lambda: _ended(store.get_experiment("default", "demo").status), 30, "the experiment ends")
        trials = store.list_trials(exp_id)
        retried = [t for t in trials if t.labels.get("katib.kubeflow.org/retry-of") == first]
        assert len(trials) == 3 and len(retried) == 1 and retried[0].state == "Succeeded", \
            [(t.name, t.state, t.labels) for t in trials]
    finally:
        a.shutdown()
        b.shutdown()
        store.close()


@pytest.mark.parametrize("servers", [2, 3])  # with two, the server the stop was sent to adopts it
def test_a_stop_reaches_the_server_that_adopted_the_experiment_while_it_waited(tmp_path: Path, servers: int):
    """A user's stop sent to b asks a, which runs the experiment, and waits; a lapses
    meanwhile and c adopts it. The stop's mark was refused (a live server holds it) and
    the stop answered all the same, leaving c running what the user stopped. Now the stop
    goes on to c."""
    store = Store(str(tmp_path / "katib.db"))
    doc = experiment(command=["sh", "-c", "sleep 60 # ${trialParameters.x}"], maxTrialCount=3,
                     parallelTrialCount=1, maxFailedTrialCount=0)
    managers = {n: _manager(store, tmp_path, n) for n in "abc"[:servers]}
    a, b = managers["a"], managers["b"]
    try:
        a.submit(admit(doc), tmp_path)
        _wait(lambda: store.get_experiment("default", "demo").owner is not None, 5, "a server claims it")
        first = store.get_experiment("default", "demo").owner
        assert first is not None
        holder = managers[first]
        asker = b if holder is not b else a
        real = asker._stop_elsewhere
        adopted: list[str] = []

        def lapses_while_it_waits(namespace: str, name: str, timeout: float) -> None:
            if not adopted:  # the holder stalls before it takes the request; another adopts
                assert holder.replica is not None
                holder.replica.close()
                _wait(lambda: store.get_experiment(namespace, name).owner not in (None, first), 15, "adopted")
                adopted.append(str(store.get_experiment(namespace, name).owner))
                return
            real(namespace, name, timeout)

        asker._stop_elsewhere = lapses_while_it_waits  # type: ignore[method-assign]
        asker.stop("default", "demo")
        assert adopted and adopted[0] != first
        rec = store.get_experiment("default", "demo")
        assert rec.stopped_at is not None and rec.owner is None, (rec.owner, rec.stopped_at)
        assert not any(m.runs_here("default", "demo") for m in managers.values() if m is not holder)
    finally:
        for m in managers.values():
            m.shutdown()
        store.close()

