"""Heartbeats and leases (several servers on one database), on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time

import pytest

from katib.store import Leases


def _lapse(leases: Leases, replica: str) -> None:
    leases.expire(replica)


def test_a_heartbeat_is_renewed_until_it_lapses(store):
    leases = Leases(store, ttl=5.0)
    leases.register("a", "host", 1)
    assert leases.renew("a")
    assert [(r.id, r.live) for r in leases.replicas()] == [("a", True)]
    _lapse(leases, "a")
    assert not leases.renew("a")  # a lapsed heartbeat is never renewed: what it held may be another's
    assert [(r.id, r.live) for r in leases.replicas()] == [("a", False)]
    leases.register("a", "host", 1)  # only registered afresh
    assert leases.renew("a")
    assert not leases.renew("nobody")


def test_liveness_by_heartbeat_and_by_the_fallback_for_other_owners(store):
    leases = Leases(store, ttl=5.0)
    leases.register("a", "host", 1)
    assert leases.alive("a", lambda _: False)
    _lapse(leases, "a")
    assert not leases.alive("a", lambda _: True)  # a replica: its heartbeat decides
    assert leases.alive("katib-run", lambda owner: owner == "katib-run")  # not a replica: the fallback
    assert leases.known("a") and not leases.known("katib-run")


def test_a_lapsed_replicas_experiments_go_to_one_taker_each(store):
    leases = Leases(store, ttl=5.0)
    for r in ("a", "b", "c"):
        leases.register(r, "host", 1)
    ids = [store.create_experiment("ns", f"e{i}", {}, {}, "/w").id for i in range(6)]
    for exp_id in ids:
        assert leases.hand_over(exp_id, None, "a")
    assert not leases.hand_over(ids[0], None, "b")  # held already
    assert not leases.hand_over(ids[0], "a", "b", lapsed=True)  # a's lease holds
    assert leases.orphans() == []
    _lapse(leases, "a")
    assert [o[0] for o in leases.orphans()] == ids
    won: dict[str, list[int]] = {"b": [], "c": []}

    def take(me: str) -> None:
        for exp_id, _, _, dead in leases.orphans():
            if leases.hand_over(exp_id, dead, me, lapsed=True):
                won[me].append(exp_id)

    threads = [threading.Thread(target=take, args=(me,)) for me in won]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(won["b"] + won["c"]) == ids  # each taken once
    owners = {e.id: e.owner for e in store.list_experiments()}
    assert all(owners[i] in won and i in won[owners[i]] for i in ids)
    assert {r.id: r.leases for r in leases.replicas()}["a"] == 0
    assert leases.holders() == {("ns", f"e{i}"): owners[exp_id] for i, exp_id in enumerate(ids)}
    # What another server's event stream relays: the experiments the others hold.
    assert leases.written("b") == {("ns", f"e{i}"): 0.0 for i, exp_id in enumerate(ids) if owners[exp_id] == "c"}


def test_release_only_by_the_holder(store):
    leases = Leases(store, ttl=5.0)
    leases.register("a", "host", 1)
    exp_id = store.create_experiment("ns", "e", {}, {}, "/w").id
    leases.hand_over(exp_id, None, "a")
    assert not leases.release(exp_id, "b")
    assert leases.release(exp_id, "a")
    assert store.get_experiment("ns", "e").owner is None


def test_requests_reach_the_holder_once(store):
    leases = Leases(store, ttl=5.0)
    leases.register("a", "host", 1)
    exp_id = store.create_experiment("ns", "e", {}, {}, "/w").id
    leases.hand_over(exp_id, None, "a")
    leases.request(exp_id, "stop_trial", "e-1", "stopped by a user")
    leases.request(exp_id, "budget")
    assert leases.take_requests("b") == []
    taken = leases.take_requests("a")
    assert [(r.action, r.trial, r.reason, r.name) for r in taken] == [
        ("stop_trial", "e-1", "stopped by a user", "e"), ("budget", None, None, "e")]
    assert leases.take_requests("a") == []
    leases.request(exp_id, "stop")
    leases.withdraw(exp_id, "stop")
    assert leases.take_requests("a") == []
    with pytest.raises(ValueError, match="action: must be one of stop, budget, stop_trial"):
        leases.request(exp_id, "explode")
    # A request nobody took in time (a stop sent as the run ended, nobody holding it since)
    # is dropped, not carried out on a later run its sender never saw.
    from katib.store._schema import experiment_requests

    leases.request(exp_id, "stop")
    leases.request(exp_id, "retry_trial", "e-2")
    store._retry(lambda c: c.execute(experiment_requests.update().values(created_at=experiment_requests.c.created_at - 61)))
    leases.request(exp_id, "budget")
    assert [r.action for r in leases.take_requests("a")] == ["budget"]
    assert leases.take_requests("a") == []  # the stale ones went too
    store.delete_experiment("ns", "e")  # its requests go with it


def test_reap_keeps_replicas_that_hold_something(store):
    leases = Leases(store, ttl=5.0)
    for r in ("a", "b"):
        leases.register(r, "host", 1)
    exp_id = store.create_experiment("ns", "e", {}, {}, "/w").id
    leases.hand_over(exp_id, None, "a")
    for r in ("a", "b"):
        _lapse(leases, r)
    time.sleep(0.05)
    assert leases.reap(older_than=0.0) == 1
    assert [r.id for r in leases.replicas()] == ["a"]
    leases.retire("a")  # holds e: kept
    assert [r.id for r in leases.replicas()] == ["a"]


def test_lease_time_must_be_positive(store):
    with pytest.raises(ValueError, match="lease time: must be positive"):
        Leases(store, ttl=0)
