"""The store on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import multiprocessing
import time

import pytest

from katib.errors import ConflictError, NotFoundError
from katib.spec import Condition
from katib.store import ObservationRow, Store, TrialRecord
from katib.store._store import SCHEMA_REVISION


def new_trial(exp_id: int, name: str) -> TrialRecord:
    return TrialRecord(id=0, experiment_id=exp_id, name=name, state="Created",
                       assignments=[{"name": "x", "value": "1"}], created_at=time.time())


def test_experiment_round_trip_and_conflict(store):
    rec = store.create_experiment("ns", "e1", {"spec": {"a": 1}}, {"conditions": []}, "/w")
    assert store.get_experiment("ns", "e1").spec == {"spec": {"a": 1}}
    with pytest.raises(ConflictError, match="ns/e1 already exists"):
        store.create_experiment("ns", "e1", {}, {}, "/w")
    store.create_experiment("other", "e1", {}, {}, "/w")  # names are per namespace
    assert [r.namespace for r in store.list_experiments()] == ["ns", "other"]
    assert [r.name for r in store.list_experiments("ns")] == ["e1"]
    store.update_experiment(rec.id, status={"startTime": "t", "trials": 3})
    status = store.get_experiment("ns", "e1").status.to_dict()
    assert status["startTime"] == "t" and status["trials"] == 0  # counts are derived from the trials when read


def test_trials_observations_and_cascade(store):
    rec = store.create_experiment("ns", "e", {}, {}, "/w")
    t = store.add_trials([new_trial(rec.id, "e-a"), new_trial(rec.id, "e-b")])[0]
    t.state = "Succeeded"
    t.observation = {"loss": {"min": "0.1", "max": "0.5", "latest": "0.1"}}
    store.save_trial(t, [ObservationRow(2.0, "loss", "0.1"), ObservationRow(1.0, "loss", "0.5")])
    store.write_trials(samples=[(t.id, ObservationRow(3.0, "acc", "0.9"))])
    assert [o.value for o in store.observations(t.id, "loss")] == ["0.5", "0.1"]  # ordered by time
    assert len(store.observations(t.id)) == 3
    _, got = store.get_trial("ns", "e-a")
    assert got.state == "Succeeded" and got.observation["loss"]["latest"] == "0.1"
    assert [x.name for x in store.list_trials(rec.id, states=["Created"])] == ["e-b"]
    with pytest.raises(ConflictError):
        store.add_trials([new_trial(rec.id, "e-a")])
    with pytest.raises(ConflictError, match="Precondition failed"):  # a uid precondition of another experiment
        store.delete_experiment("ns", "e", uid="not-" + rec.uid)
    store.get_trial("ns", "e-a")  # nothing was deleted
    store.delete_experiment("ns", "e", uid=rec.uid)
    with pytest.raises(NotFoundError):
        store.get_trial("ns", "e-a")
    with pytest.raises(NotFoundError, match="experiment ns/e not found"):
        store.get_experiment("ns", "e")


def test_algorithm_state_upsert(store):
    rec = store.create_experiment("ns", "e", {}, {}, "/w")
    assert store.algorithm_state(rec.id) is None
    store.save_algorithm_state(rec.id, {"bracket": 1})
    store.save_algorithm_state(rec.id, {"bracket": 2})
    assert store.algorithm_state(rec.id) == {"bracket": 2}


def test_claim_refuses_a_live_owner(store):
    rec = store.create_experiment("ns", "e", {}, {}, "/w")
    store.claim_experiment(rec.id, "a", lambda owner: True)
    with pytest.raises(ConflictError, match="being run by another controller"):
        store.claim_experiment(rec.id, "b", lambda owner: True)
    store.claim_experiment(rec.id, "b", lambda owner: False)  # a dead owner is replaced
    assert store.get_experiment("ns", "e").owner == "b"


def test_two_controllers_claiming_at_once_one_wins(store):
    """Both find the owner dead at the same moment; only one may take the experiment
    (on SQLite the read and the write were two steps, and both controllers ran it)."""
    import threading

    rec = store.create_experiment("ns", "e", {}, {}, "/w")
    store.claim_experiment(rec.id, "dead", lambda owner: False)
    both_read = threading.Barrier(2, timeout=2)

    def is_alive(owner: str) -> bool:
        if owner == "dead":
            try:
                both_read.wait()  # each has read "dead" before either writes
            except threading.BrokenBarrierError:
                pass  # PostgreSQL locks the row: the second reads after the first wrote
            return False
        return True

    outcomes: dict[str, str] = {}

    def claim(me: str) -> None:
        try:
            store.claim_experiment(rec.id, me, is_alive)
            outcomes[me] = "won"
        except ConflictError:
            outcomes[me] = "refused"

    threads = [threading.Thread(target=claim, args=(me,)) for me in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes.values()) == ["refused", "won"]
    winner = next(me for me, outcome in outcomes.items() if outcome == "won")
    assert store.get_experiment("ns", "e").owner == winner


def test_schema_is_migrated_once(store):
    again = Store(store.url)  # opening an existing database does not migrate twice
    assert again._revision() == SCHEMA_REVISION
    again.close()


def _writer(url: str, exp_id: int, worker: int) -> None:
    s = Store(url)
    for i in range(40):
        t = s.add_trials([new_trial(exp_id, f"w{worker}-{i}")])[0]
        s.write_trials(samples=[(t.id, ObservationRow(time.time(), "loss", str(i))) for _ in range(5)])
        s.save_trial(t)
    s.close()


def test_parallel_writers_never_lose_rows_or_lock(store):
    rec = store.create_experiment("ns", "busy", {}, {}, "/w")
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(store.url, rec.id, w)) for w in range(6)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * 6
    trials = store.list_trials(rec.id)
    assert len(trials) == 240
    assert sum(len(store.observations(t.id)) for t in trials[:10]) == 50


def test_migrations_build_exactly_the_declared_schema(tmp_path):
    """A fresh database gets `metadata.create_all`; Alembic's migrations must agree."""
    import sqlalchemy as sa
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from katib.store._schema import metadata

    engine = sa.create_engine(f"sqlite:///{tmp_path / 'migrated.db'}")
    with engine.begin() as conn:
        Store._alembic_upgrade(conn)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
        assert diff == []
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == SCHEMA_REVISION
    engine.dispose()
    Store(str(tmp_path / "migrated.db")).close()  # and the store opens it without migrating again


def test_text_metric_values_of_any_length(store):
    """A DARTS genotype is a metric value of several hundred characters."""
    rec = store.create_experiment("ns", "darts", {}, {}, "/w")
    t = store.add_trials([new_trial(rec.id, "darts-1")])[0]
    genotype = "Genotype(normal=[[('separable_convolution_3x3', 0), ('skip_connection', 1)]] * 20, normal_concat=range(2, 6))" * 4
    store.write_trials(samples=[(t.id, ObservationRow(time.time(), "Best-Genotype", genotype))])
    assert [o.value for o in store.observations(t.id)] == [genotype]


def test_a_nul_byte_a_trial_printed_cannot_poison_the_store(store):
    """PostgreSQL's text refuses NUL: a value or message holding one is stored, readable."""
    rec = store.create_experiment("ns", "nul", {"spec": {}}, {"conditions": []}, "/w")
    t = new_trial(rec.id, "nul-t")
    store.add_trials([t])
    t.conditions = [Condition(type="Failed", status="True", reason="TrialFailed", message="last output: a\x00b")]
    store.write_trials(save=[t], samples=[(t.id, ObservationRow(1.0, "genotype", "ab\x00cd"))])
    assert [o.value for o in store.observations(t.id)] == ["ab\ufffdcd"]
    _, again = store.get_trial("ns", "nul-t")
    assert again.conditions[0].message == "last output: a\x00b"


def test_only_a_name_taken_is_a_conflict(store):
    """Every IntegrityError of a write was reported as "a trial with that name already
    exists", which the server takes for a conflict a retry can fix: an observation without a
    time (a NaN time, stored as NULL) left its experiment resumable for ever and never ran."""
    from sqlalchemy.exc import IntegrityError

    rec = store.create_experiment("ns", "e", {}, {}, "/w")
    [t] = store.add_trials([new_trial(rec.id, "e-a")])
    with pytest.raises(ConflictError, match="a trial with that name already exists"):
        store.write_trials(new=[new_trial(rec.id, "e-a")])
    with pytest.raises(IntegrityError):
        store.write_trials(new=[new_trial(rec.id, "e-b")], samples=[(t.id, ObservationRow(None, "loss", "0.5"))])  # type: ignore[arg-type]
    assert [x.name for x in store.list_trials(rec.id)] == ["e-a"]  # nothing of the failed write


def _open(job: tuple[str, float]) -> str:
    path, at = job
    while time.time() < at:  # every process at once
        pass
    try:
        Store(path).close()
        return "ok"
    except Exception as exc:  # noqa: BLE001 - reported to the test
        return f"{type(exc).__name__}: {exc}"[:200]


def test_processes_opening_a_new_sqlite_store_at_once_all_open_it(tmp_path):
    """SQLite runs each CREATE TABLE on its own, so a second process saw the first one's
    tables before its schema revision, and failed "table experiments already exists" (a
    `katib get` beside the first `katib run` of a new store, once in CI); several at once
    each failed on another's table and none wrote the revision. Now one makes the schema
    while the others wait (a lock beside the database), and a new database's WAL mode,
    which answers "locked" without waiting, is asked again."""
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(6) as pool:
        pool.map(_open, [(str(tmp_path / "warm.db"), 0.0)] * 6)  # every worker started and imported
        for round_ in range(6):
            at = time.time() + 0.3
            results = pool.map(_open, [(str(tmp_path / f"new-{round_}.db"), at)] * 6)
            assert results == ["ok"] * 6, results


def test_an_edit_lands_only_on_the_spec_it_was_made_from(store):
    """Two servers editing one experiment each read its spec, changed it and wrote it back:
    the second write dropped the first's change. ``if_spec`` writes only while the stored
    spec is still the one read, on both databases, and leaves the other edit in place."""
    rec = store.create_experiment("ns", "e", {"metadata": {"labels": {}}, "spec": {"a": 1}}, {}, "/w")
    theirs = {"metadata": {"labels": {"theirs": "x"}}, "spec": {"a": 1}}
    assert store.update_experiment(rec.id, if_spec=rec.spec, spec=theirs)  # the first edit lands
    mine = {"metadata": {"labels": {"mine": "x"}}, "spec": {"a": 1}}
    assert not store.update_experiment(rec.id, if_spec=rec.spec, spec=mine)  # made from what it replaced
    assert store.get_experiment("ns", "e").spec == theirs
    assert store.update_experiment(rec.id, if_spec=theirs, spec=mine)
    assert store.get_experiment("ns", "e").spec == mine
    with pytest.raises(NotFoundError):
        store.update_experiment(rec.id + 100, if_spec=mine, spec=theirs)
    # if_unfinished: an edit made for a running experiment does not land on an ended one
    running = {"conditions": [{"type": "Running", "status": "True"}]}
    store.update_experiment(rec.id, status=running)
    assert store.update_experiment(rec.id, if_spec=mine, if_unfinished=True, spec=theirs)
    store.update_experiment(rec.id, status={"conditions": [{"type": "Succeeded", "status": "True"}]})
    assert not store.update_experiment(rec.id, if_spec=theirs, if_unfinished=True, spec=mine)
    assert store.get_experiment("ns", "e").spec == theirs


def test_a_delete_with_an_owner_condition_leaves_one_a_controller_took_up(store):
    """`katib delete` checks that no live controller holds the experiment, then deletes it:
    a server that took it up in between lost it under its running trials. The delete now
    holds only while the owner it checked still holds it."""
    rec = store.create_experiment("ns", "e", {}, {}, "/w")
    store.update_experiment(rec.id, owner="server-b")  # taken up after the check (which saw none)
    with pytest.raises(ConflictError, match="taken up by server-b"):
        store.delete_experiment("ns", "e", rec.uid, owner=None)
    assert store.get_experiment("ns", "e").owner == "server-b"
    store.delete_experiment("ns", "e", rec.uid, owner="server-b")
    with pytest.raises(NotFoundError):
        store.get_experiment("ns", "e")
