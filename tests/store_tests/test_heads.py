"""Experiments by their light columns (``katib/store/_heads.py``): what the namespace-wide
lists walk and ``/metrics`` counts, without reading a spec."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from katib.errors import NotFoundError
from katib.spec import OPTIMIZATION_JOB_SOURCE
from katib.store import (
    ExperimentHead,
    Store,
    TrialRecord,
    experiment_census,
    experiment_heads,
    list_flags,
)

TRAINJOB = {"apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJob", "spec": {}}


def _spec(job: dict | None = None, source: object = None) -> dict:
    doc: dict = {"metadata": {"annotations": {}}, "spec": {"trialTemplate": {"trialSpec": job or {"kind": "Job"}}}}
    if source is not None:
        doc["metadata"]["annotations"][OPTIMIZATION_JOB_SOURCE] = source
    return doc


@pytest.mark.parametrize(("spec", "flags"), [
    (_spec(), (False, False)),
    (_spec(TRAINJOB), (False, True)),
    (_spec({"kind": "${trialParameters.kind}"}), (False, True)),  # a kind the trial's rendering fills in
    (_spec(TRAINJOB, json.dumps({"spec": {}})), (True, True)),
    (_spec(source="not json"), (False, False)),
    (_spec(source="[1]"), (False, False)),  # JSON, but not an OptimizationJob's object
    (_spec(source=""), (False, False)),
    ({}, (False, False)),
    ({"metadata": [], "spec": "x"}, (False, False)),
])
def test_list_flags_say_what_source_of_and_a_trainjob_template_say(spec, flags):
    from katib.optimizationjobs import source_of
    from katib.store import ExperimentRecord

    got = list_flags(spec)
    assert (got["optimization_job"], got["trainjob"]) == flags
    rec = ExperimentRecord(id=1, namespace="ns", name="e", uid="u", spec=spec, status=None, workdir="/w",  # type: ignore[arg-type]
                           owner=None, created_at=0.0, updated_at=0.0)
    if isinstance(spec.get("metadata"), dict):
        assert got["optimization_job"] == (source_of(rec) is not None)


def _flags(store: Store) -> dict[str, tuple[bool, bool]]:
    from katib.store._schema import experiments as table

    with store._read() as conn:
        return {r.name: (bool(r.optimization_job), bool(r.trainjob))
                for r in conn.execute(sa.select(table.c.name, table.c.optimization_job, table.c.trainjob))}


def test_the_flags_are_written_with_the_spec(store):
    store.create_experiment("ns", "plain", _spec(), {}, "/w")
    rec = store.create_experiment("ns", "oj", _spec(TRAINJOB, json.dumps({"spec": {}})), {}, "/w")
    assert _flags(store) == {"plain": (False, False), "oj": (True, True)}
    store.update_experiment(rec.id, spec=_spec())
    assert _flags(store)["oj"] == (False, False)
    store.update_experiment(rec.id, owner="me")  # no spec: the flags stay
    assert _flags(store)["oj"] == (False, False)
    assert [h.name for h in experiment_heads(store, "ns", trainjob=True)] == []
    store.update_experiment(rec.id, spec=_spec(TRAINJOB))
    assert [h.name for h in experiment_heads(store, "ns", trainjob=True)] == ["oj"]
    assert [h.name for h in experiment_heads(store, "ns", optimization_job=True)] == []


def test_a_head_reads_the_rest_of_its_record_at_first_use(store):
    rec = store.create_experiment("ns", "e", {"spec": {"k": 1}}, {"conditions": []}, "/w")
    store.add_trials([TrialRecord(id=0, experiment_id=rec.id, name="e-0", state="Running", assignments=[])])
    store.update_experiment(rec.id, stopped_at=123.0, owner="someone")
    [head] = experiment_heads(store, "ns")
    assert isinstance(head, ExperimentHead) and not head.loaded
    assert (head.id, head.namespace, head.name, head.uid, head.loaded) == (rec.id, "ns", "e", rec.uid, False)
    assert head.weight() >= len('{"spec":{"k":1}}')
    # stopped_at has a default on the record's class: read from the row, not that default
    assert head.stopped_at == 123.0 and head.loaded
    whole = store.get_experiment("ns", "e")
    assert (head.spec, head.status, head.owner, head.workdir, head.updated_at) == (
        whole.spec, whole.status, whole.owner, whole.workdir, whole.updated_at)
    assert head.status.trials_running == 1 and head.status.running_trial_list == ["e-0"]
    head.spec = {"changed": True}  # a field set stays set, as on a record
    assert head.spec == {"changed": True}


def test_a_head_of_an_experiment_deleted_or_replaced_since_is_not_found(store):
    store.create_experiment("ns", "a", {}, {}, "/w")
    [head] = experiment_heads(store, "ns")
    store.delete_experiment("ns", "a")
    with pytest.raises(NotFoundError):
        _ = head.spec
    assert not head.loaded
    again = store.create_experiment("ns", "a", {}, {}, "/w")  # SQLite may give it the same id
    stale = ExperimentHead(store, again.id, "ns", "a", head.uid)
    with pytest.raises(NotFoundError):
        _ = stale.status


def test_heads_are_read_a_chunk_at_a_time_as_the_caller_goes_on(store):
    for i in range(40):
        store.create_experiment("ns" if i % 2 else "other", f"e{i}", {}, {}, "/w")
    statements: list[str] = []
    listen = sa.event.listens_for(store._engine, "before_cursor_execute")

    @listen
    def seen(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    heads = experiment_heads(store, "ns")
    first = next(heads)
    assert first.name == "e1" and len(statements) == 1 and "spec" not in statements[0].split("FROM")[0]
    assert [h.name for h in heads] == [f"e{i}" for i in range(3, 40, 2)] and len(statements) == 2  # 16, then 32
    assert [h.name for h in experiment_heads(store, "ns", start=first.id + 1, names=frozenset({"e1", "e5", "e7"}))] == ["e5", "e7"]
    sa.event.remove(store._engine, "before_cursor_execute", seen)


def test_the_census_counts_by_state_and_reads_only_readable_namespaces(store):
    created = {"type": "Created", "status": "True", "reason": "ExperimentCreated"}
    a = store.create_experiment("ns-a", "a", _spec(), {"conditions": [created]}, "/w")
    store.create_experiment("ns-b", "b", _spec(), {}, "/w")
    store.add_trials([TrialRecord(id=0, experiment_id=a.id, name=f"a-{i}", state=s, assignments=[])
                      for i, s in enumerate(["Succeeded", "Succeeded", "Failed"])])
    rows = {r.name: r for r in experiment_census(store)}
    assert rows["a"].trials == {"Succeeded": 2, "Failed": 1} and [c.type for c in rows["a"].conditions] == ["Created"]
    assert rows["b"].trials == {} and rows["b"].conditions == [] and rows["b"].namespace == "ns-b"
    assert [r.name for r in experiment_census(store, lambda ns: ns == "ns-b")] == ["b"]
    assert experiment_census(store, lambda ns: False) == []


def test_an_older_database_gets_the_flags_from_its_specs(tmp_path):
    """Migration 0013 fills the flags of the experiments already there."""
    from katib.store._schema import experiments as table

    path = tmp_path / "old.db"
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        Store._alembic_upgrade(conn, "0012")
        for name, spec in (("plain", _spec()), ("tj", _spec(TRAINJOB)), ("oj", _spec(TRAINJOB, json.dumps({"spec": {}}))),
                           ("broken", "{not json")):
            conn.execute(sa.text("INSERT INTO experiments (namespace, name, uid, spec, status, workdir, created_at, updated_at) "
                                 "VALUES ('ns', :n, :n, :s, '{}', '/w', 0, 0)"),
                         {"n": name, "s": spec if isinstance(spec, str) else json.dumps(spec)})
    engine.dispose()
    store = Store(str(path))
    assert _flags(store) == {"plain": (False, False), "tj": (False, True), "oj": (True, True), "broken": (False, False)}
    assert [h.name for h in experiment_heads(store, "ns", optimization_job=True)] == ["oj"]
    with store._read() as conn:
        indexes = {i["name"] for i in sa.inspect(conn).get_indexes(table.name)}
    assert {"ix_experiments_optimization_job", "ix_experiments_trainjob"} <= indexes
    store.close()


def test_the_flags_migration_goes_down_keeping_every_trial(tmp_path):
    """Migration 0013 down drops the flags and their indexes in place (plain DROP COLUMN,
    as 0011): SQLite's batch mode would drop the experiments table, and every trial with it."""
    from alembic import command
    from alembic.config import Config

    from katib.store import _store

    path = tmp_path / "k.db"
    store = Store(str(path))
    rec = store.create_experiment("ns", "tj", _spec(TRAINJOB), {}, "/w")
    store.add_trials([TrialRecord(id=0, experiment_id=rec.id, name=f"tj-{i}", state="Succeeded", assignments=[]) for i in range(3)])
    store.close()
    engine = sa.create_engine(f"sqlite:///{path}")

    @sa.event.listens_for(engine, "connect")
    def _foreign_keys(dbapi_conn, _record):  # as the store's connections have them
        dbapi_conn.execute("PRAGMA foreign_keys=ON")

    cfg = Config(str(Path(_store.__file__).with_name("alembic.ini")))
    cfg.set_main_option("script_location", str(Path(_store.__file__).with_name("migrations")))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0012")
    with engine.connect() as conn:
        inspect = sa.inspect(conn)
        assert not {"optimization_job", "trainjob"} & {c["name"] for c in inspect.get_columns("experiments")}
        assert not {"ix_experiments_optimization_job", "ix_experiments_trainjob"} & {i["name"] for i in inspect.get_indexes("experiments")}
        assert conn.execute(sa.text("SELECT count(*) FROM trials")).scalar() == 3
    engine.dispose()
    store = Store(str(path))  # and up again: the flags filled in from the specs
    assert _flags(store) == {"tj": (False, True)} and len(store.list_trials(rec.id)) == 3
    store.close()


def test_refresh_list_flags_mends_rows_a_server_before_0013_wrote(store):
    """A server of an older version still running on the migrated database writes its
    experiments with both flags false (the columns' default): refresh_list_flags, run once
    it has stopped, writes them again from the specs (docs/scaling.md, Upgrading)."""
    from katib.store import refresh_list_flags
    from katib.store._schema import experiments as table

    store.create_experiment("ns", "plain", _spec(), {}, "/w")
    store.create_experiment("ns", "tj", _spec(TRAINJOB), {}, "/w")
    store.create_experiment("ns", "oj", _spec(TRAINJOB, json.dumps({"spec": {}})), {}, "/w")
    with store._engine.begin() as conn:  # as the older server wrote them
        conn.execute(table.update().values(optimization_job=False, trainjob=False))
    assert [h.name for h in experiment_heads(store, "ns", trainjob=True)] == []
    assert refresh_list_flags(store) == 2
    assert _flags(store) == {"plain": (False, False), "tj": (False, True), "oj": (True, True)}
    assert [h.name for h in experiment_heads(store, "ns", trainjob=True)] == ["tj", "oj"]
    assert refresh_list_flags(store) == 0
