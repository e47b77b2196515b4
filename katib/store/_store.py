"""The store: experiments, trials, observation logs and algorithm state in one database.

SQLite (a file, WAL mode) by default, PostgreSQL by URL; the same SQLAlchemy Core code
serves both. Only the controller writes experiment and trial state; every write is one
short transaction, retried with backoff when the database is momentarily busy.
"""

from __future__ import annotations

import json
import random
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from katib.errors import ConflictError, NotFoundError, TemporaryError
from katib.spec import Condition, ExperimentStatus

from ._derived import derive, stored
from ._heads import list_flags
from ._locks import Locks
from ._records import (
    ExperimentRecord,
    ObservationRow,
    TrialRecord,
    _dumps,
    _loads,
    default_db_url,
    normalise_url,
)
from ._schema import (
    algorithm_state,
    experiments,
    metadata,
    observations,
    trials,
)

_UPDATE_TRIAL = trials.update().where(trials.c.id == sa.bindparam("_id"))

SCHEMA_REVISION = "0013"
T = TypeVar("T")


def _stored(status: ExperimentStatus | Mapping[str, Any]) -> dict[str, Any]:
    """What is written of a status: Katib's JSON of it (validated), less what is derived
    when read."""
    if not isinstance(status, ExperimentStatus):
        status = ExperimentStatus.model_validate(status)
    return stored(status.to_dict())


def _upsert_state(conn: Connection, exp_id: int, state: dict[str, Any]) -> None:
    values = {"state": _dumps(state), "updated_at": time.time()}
    done = conn.execute(
        algorithm_state.update().where(algorithm_state.c.experiment_id == exp_id).values(**values)
    ).rowcount
    if not done:
        conn.execute(algorithm_state.insert().values(experiment_id=exp_id, **values))


_ANY_OWNER = object()  # delete_experiment without an owner condition


def _ended(status: Any) -> bool:
    """Whether a stored status says the experiment ended (Succeeded or Failed is true)."""
    conditions = status.get("conditions") if isinstance(status, dict) else None
    return any(isinstance(c, dict) and c.get("type") in ("Succeeded", "Failed") and c.get("status") == "True"
               for c in conditions or [])


def _duplicate(exc: IntegrityError) -> bool:
    """Whether the violation is a unique key's (a name taken), not another constraint's."""
    code = getattr(exc.orig, "pgcode", None) or getattr(exc.orig, "sqlstate", None)
    return code == "23505" if code else "UNIQUE constraint failed" in str(exc.orig)


def _wal(cur: Any) -> None:
    """WAL mode, on a connection to a database another process may be making or opening:
    changing a new database's journal mode answers "database is locked" at once, without the
    busy handler's wait, while another connection holds it (``Store(path)`` in several
    processes at once)."""
    for attempt in range(500):
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == 499:
                raise
            time.sleep(0.01)


class Store:
    """One database holding every experiment.

    >>> store = Store("sqlite://")          # in memory; a path or a URL works too
    >>> store.list_experiments()
    []
    """

    def __init__(self, db: str | None = None) -> None:
        self.url = normalise_url(db or default_db_url())
        self.dialect = self.url.split(":", 1)[0].split("+", 1)[0]
        self._engine = self._create_engine()
        self._locks = Locks(self.url, self.dialect)
        self._migrate()

    @property
    def lock_folder(self) -> str | None:
        """Where a SQLite store keeps its locks' files (None: it needs none)."""
        return self._locks.folder

    def locked(self, name: str) -> AbstractContextManager[None]:
        """Held by one thread of one process among all those on this database at a time
        (``_locks.py``): ``with store.locked("ask-tell/ns/name"): …``."""
        return self._locks.hold(name)

    # -- plumbing ----------------------------------------------------------------------

    def _create_engine(self) -> Engine:
        if self.dialect == "sqlite":
            memory = self.url in ("sqlite://", "sqlite:///:memory:")
            kwargs: dict[str, Any] = {"connect_args": {"timeout": 30, "check_same_thread": False}}
            if memory:
                kwargs["poolclass"] = sa.pool.StaticPool
            engine = sa.create_engine(self.url, **kwargs)

            @sa.event.listens_for(engine, "connect")
            def _pragmas(dbapi_conn: Any, _record: Any) -> None:
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA busy_timeout=30000")
                if not memory:
                    _wal(cur)
                cur.execute("PRAGMA synchronous=NORMAL")
                cur.execute("PRAGMA foreign_keys=ON")
                cur.close()

            return engine
        return sa.create_engine(self.url, pool_pre_ping=True, pool_size=5, max_overflow=10)

    def ping(self) -> str | None:
        """Why the database does not answer ``SELECT 1`` (None: it does)."""
        try:
            with self._engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except (OperationalError, DBAPIError) as exc:
            return str(exc.orig or exc).splitlines()[0][:300]
        return None

    def _revision(self) -> str | None:
        with self._engine.connect() as conn:
            if not sa.inspect(conn).has_table("alembic_version"):
                return None
            return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()

    def _migrate(self) -> None:
        """Bring the schema to ``SCHEMA_REVISION``. An empty database gets the current
        tables at once (what the migrations would build, as a test checks); an older
        one is upgraded by Alembic's migrations."""
        try:
            revision = self._revision()
        except OperationalError:  # locked by another process creating it: below, which waits for it
            revision = None
        if revision == SCHEMA_REVISION:
            return
        if self._locks.folder is not None:
            # SQLite runs each CREATE TABLE on its own: processes making a new store at once
            # each found another's tables half made, failed on one ("table trials already
            # exists") and all waited for a revision none would write. One at a time.
            with self._locks.hold("schema"):
                revision = self._settled()
                if revision != SCHEMA_REVISION:
                    self._make_schema(revision)
            return
        self._make_schema(revision)

    def _make_schema(self, revision: str | None) -> None:
        try:
            with self._engine.begin() as conn:
                if self.dialect == "postgresql":
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock(724001)"))
                if revision is None and not sa.inspect(conn).get_table_names():
                    metadata.create_all(conn)
                    version = sa.Table("alembic_version", sa.MetaData(),
                                       sa.Column("version_num", sa.String(32), primary_key=True))
                    version.create(conn)
                    conn.execute(version.insert().values(version_num=SCHEMA_REVISION))
                else:
                    self._alembic_upgrade(conn)
        except (OperationalError, IntegrityError, DBAPIError):
            # Another process migrates at the same moment; fine once it gets there. SQLite
            # runs each CREATE TABLE on its own, so its tables show before its revision does:
            # give it a moment (a `katib get` beside the first `katib run` of a new store).
            deadline = time.monotonic() + 10
            while self._settled() != SCHEMA_REVISION:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def _settled(self) -> str | None:
        """The schema revision, or None while the database is locked by the process making it
        (SQLite answers "database is locked" at once where waiting would deadlock)."""
        try:
            return self._revision()
        except OperationalError:
            return None

    @staticmethod
    def _alembic_upgrade(conn: Connection, target: str = "head") -> None:
        from alembic import command
        from alembic.config import Config

        cfg = Config(str(Path(__file__).with_name("alembic.ini")))
        cfg.set_main_option("script_location", str(Path(__file__).with_name("migrations")))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, target)

    def _retry(self, fn: Callable[[Connection], T], attempts: int = 6) -> T:
        delay = 0.05
        for attempt in range(attempts):
            try:
                with self._engine.begin() as conn:
                    return fn(conn)
            except OperationalError as exc:
                text = str(exc.orig).lower()
                temporary = "locked" in text or "busy" in text or exc.connection_invalidated
                if not temporary:
                    raise
                if attempt == attempts - 1:
                    raise TemporaryError(f"database busy after {attempts} attempts: {exc.orig}") from exc
                time.sleep(delay * (1 + random.random()))
                delay *= 2
        raise AssertionError("unreachable")

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self._engine.connect() as conn:
            yield conn

    def close(self) -> None:
        self._engine.dispose()
        self._locks.close()

    # -- experiments -------------------------------------------------------------------

    @staticmethod
    def _experiments(conn: Connection, rows: Iterable[Any]) -> list[ExperimentRecord]:
        """Records of experiment rows, each with its typed status: what is stored plus
        the counts and trial lists derived from the trial rows in the same read."""
        rows = list(rows)
        statuses: dict[int, dict[str, Any]] = {row.id: json.loads(row.status) for row in rows}
        derive(conn, statuses)
        return [ExperimentRecord(
            id=row.id, namespace=row.namespace, name=row.name, uid=row.uid,
            spec=json.loads(row.spec), status=ExperimentStatus.model_validate(statuses[row.id]),
            workdir=row.workdir, owner=row.owner, created_at=row.created_at, updated_at=row.updated_at,
            stopped_at=row.stopped_at,
        ) for row in rows]

    def create_experiment(
        self, namespace: str, name: str, spec: dict[str, Any], status: ExperimentStatus | Mapping[str, Any], workdir: str,
        initial_trials: Sequence[TrialRecord] = (),
    ) -> ExperimentRecord:
        """Insert an experiment, and with it (same transaction) any trials it starts with."""
        now = time.time()
        values = {
            "namespace": namespace, "name": name, "uid": str(uuid.uuid4()), "spec": _dumps(spec),
            "status": _dumps(_stored(status)), "workdir": workdir, "owner": None,
            "created_at": now, "updated_at": now, **list_flags(spec),
        }

        def insert(conn: Connection) -> int:
            exp_id = int(conn.execute(experiments.insert().values(**values)).inserted_primary_key[0])  # type: ignore[index]
            for t in initial_trials:
                t.experiment_id = exp_id
                t.id = int(conn.execute(trials.insert().values(**self._trial_values(t))).inserted_primary_key[0])  # type: ignore[index]
            return exp_id

        try:
            exp_id = self._retry(insert)
        except IntegrityError:
            raise ConflictError(f"experiment {namespace}/{name} already exists") from None
        return self.get_experiment_by_id(exp_id)

    # The status's counts and trial lists are derived from the trial rows when read
    # (_derived.py), in the same read as the experiment; they are never stored.

    def get_experiment(self, namespace: str, name: str) -> ExperimentRecord:
        with self._read() as conn:
            row = conn.execute(
                experiments.select().where(experiments.c.namespace == namespace, experiments.c.name == name)
            ).first()
            if row is None:
                raise NotFoundError(f"experiment {namespace}/{name} not found")
            return self._experiments(conn, [row])[0]

    def get_experiment_by_id(self, exp_id: int) -> ExperimentRecord:
        with self._read() as conn:
            row = conn.execute(experiments.select().where(experiments.c.id == exp_id)).first()
            if row is None:
                raise NotFoundError(f"experiment #{exp_id} not found")
            return self._experiments(conn, [row])[0]

    def list_experiments(self, namespace: str | None = None) -> list[ExperimentRecord]:
        query = experiments.select().order_by(experiments.c.created_at)
        if namespace is not None:
            query = query.where(experiments.c.namespace == namespace)
        with self._read() as conn:
            return self._experiments(conn, conn.execute(query))

    def namespaces(self, most: int) -> list[str]:
        """The namespaces that hold an experiment, sorted: at most ``most`` of them."""
        query = sa.select(experiments.c.namespace).distinct().order_by(experiments.c.namespace).limit(most)
        with self._read() as conn:
            return [r.namespace for r in conn.execute(query)]

    def namespaces_of(self, name: str, kind: str = "experiment") -> list[str]:
        """The namespaces holding an experiment (``kind="trial"``: a trial) of this name,
        sorted: what lets a command find a name without ``--namespace``."""
        if kind == "trial":
            query = (sa.select(experiments.c.namespace).distinct()
                     .join(trials, trials.c.experiment_id == experiments.c.id).where(trials.c.name == name))
        else:
            query = sa.select(experiments.c.namespace).distinct().where(experiments.c.name == name)
        with self._read() as conn:
            return sorted(r.namespace for r in conn.execute(query))

    def update_experiment(self, exp_id: int, *, if_spec: dict[str, Any] | None = None, if_unfinished: bool = False,
                          **fields: Any) -> bool:
        """Set any of ``spec``, ``status`` (an ``ExperimentStatus``, or Katib's JSON of
        one), ``owner``, ``workdir``, ``stopped_at``. With ``if_spec``, only while the stored
        spec is still that one (an edit read, changed and written back: another server's
        edit in between is not overwritten), and with ``if_unfinished`` only while it has
        not ended (an edit made for a running experiment that ended meanwhile is made again
        for an ended one); returns whether it was written."""
        if "status" in fields:
            fields["status"] = _stored(fields["status"])  # counts and lists are derived when read
        values = {k: (_dumps(v) if k in ("spec", "status") else v) for k, v in fields.items()}
        if "spec" in fields:
            values.update(list_flags(fields["spec"]))
        values["updated_at"] = time.time()
        where = experiments.c.id == exp_id

        def write(conn: Connection) -> bool:
            if if_spec is None:
                conn.execute(experiments.update().where(where).values(**values))
                return True
            row = conn.execute(sa.select(experiments.c.spec, experiments.c.status).where(where)).first()
            if row is None:
                raise NotFoundError(f"experiment #{exp_id} not found")
            if json.loads(row.spec) != if_spec or (if_unfinished and _ended(json.loads(row.status))):
                return False
            # The text just read, compared where it is written: a commit in between fails it.
            same = [experiments.c.spec == row.spec] + ([experiments.c.status == row.status] if if_unfinished else [])
            return bool(conn.execute(experiments.update().where(where, *same).values(**values)).rowcount)

        return self._retry(write)

    def claim_experiment(self, exp_id: int, owner: str, is_alive: Callable[[str], bool]) -> None:
        """Make ``owner`` the experiment's one controller, unless a live one holds it. A
        user's stop (``stopped_at``) ends here: the experiment runs again."""

        def claim(conn: Connection) -> bool:
            row = conn.execute(
                sa.select(experiments.c.owner).where(experiments.c.id == exp_id).with_for_update()
            ).first()
            if row is None:
                raise NotFoundError(f"experiment #{exp_id} not found")
            current = row.owner
            if current and current != owner and is_alive(current):
                raise ConflictError(f"experiment is being run by another controller ({current}); stop it first")
            # Only if the owner is still the one just read: SQLite has no row lock (the
            # read above takes none), so two claimers could both read a dead owner.
            unchanged = experiments.c.owner.is_(None) if current is None else experiments.c.owner == current
            done = conn.execute(
                experiments.update().where(experiments.c.id == exp_id, unchanged).values(owner=owner, stopped_at=None)
            ).rowcount
            return bool(done)

        while not self._retry(claim):
            pass  # another claimer came between the read and the write: read again

    def delete_experiment(self, namespace: str, name: str, uid: str | None = None, *,
                          owner: Any = _ANY_OWNER) -> None:
        """Delete the experiment with its trials and observations (by its id: one made
        again under the name meanwhile is not touched); with ``uid``, only if it is that one;
        with ``owner``, only while that one (None: none) still holds it (a controller that
        took it up since is a ``ConflictError``). ``NotFoundError`` if it went meanwhile."""
        exp = self.get_experiment(namespace, name)
        exp.check_uid(uid)

        def delete(conn: Connection) -> None:
            query = sa.select(experiments.c.owner).where(experiments.c.id == exp.id)
            row = conn.execute(query.with_for_update() if owner is not _ANY_OWNER else query).first()
            if row is None:
                raise NotFoundError(f"experiment {namespace}/{name} not found")
            if owner is not _ANY_OWNER and row.owner != owner:
                raise ConflictError(f"experiment {namespace}/{name} was taken up by {row.owner} meanwhile; stop it first")
            trial_ids = sa.select(trials.c.id).where(trials.c.experiment_id == exp.id)
            conn.execute(observations.delete().where(observations.c.trial_id.in_(trial_ids)))
            conn.execute(trials.delete().where(trials.c.experiment_id == exp.id))
            conn.execute(algorithm_state.delete().where(algorithm_state.c.experiment_id == exp.id))
            # The owner compared again where the row goes: SQLite runs the read above outside
            # any transaction (no row lock), so a claim may land between the two.
            same = [experiments.c.owner.is_(None) if owner is None else experiments.c.owner == owner] \
                if owner is not _ANY_OWNER else []
            if not conn.execute(experiments.delete().where(experiments.c.id == exp.id, *same)).rowcount:
                if not same:
                    raise NotFoundError(f"experiment {namespace}/{name} not found")
                raise ConflictError(f"experiment {namespace}/{name} changed hands while it was deleted: nothing was deleted")

        self._retry(delete)

    # -- trials ------------------------------------------------------------------------

    @staticmethod
    def _trial(row: Any) -> TrialRecord:
        return TrialRecord(
            id=row.id, experiment_id=row.experiment_id, name=row.name, state=row.state,
            assignments=json.loads(row.assignments), labels=json.loads(row.labels),
            conditions=[Condition.model_validate(c) for c in json.loads(row.conditions)],
            observation=_loads(row.observation),
            objective=row.objective, handle=_loads(row.handle), attempt=row.attempt,
            created_at=row.created_at, start_time=row.start_time, completion_time=row.completion_time,
            updated_at=getattr(row, "updated_at", None),
            early_stopping_rules=_loads(getattr(row, "early_stopping_rules", None)),
        )

    @staticmethod
    def _trial_values(t: TrialRecord) -> dict[str, Any]:
        return {
            "experiment_id": t.experiment_id, "name": t.name, "state": t.state,
            "assignments": _dumps(t.assignments), "labels": _dumps(t.labels),
            "conditions": _dumps([c.to_dict() for c in t.conditions]), "observation": _dumps(t.observation),
            "objective": t.objective, "handle": _dumps(t.handle), "attempt": t.attempt,
            "created_at": t.created_at, "start_time": t.start_time, "completion_time": t.completion_time,
            "updated_at": time.time(), "early_stopping_rules": _dumps(t.early_stopping_rules),
        }

    def write_trials(
        self,
        save: Sequence[TrialRecord] = (),
        new: Sequence[TrialRecord] = (),
        samples: Iterable[tuple[int, ObservationRow]] = (),
        algorithm_state: tuple[int, dict[str, Any]] | None = None,
    ) -> None:
        """In one transaction: update ``save``, insert ``new`` (their ids are set),
        append ``samples``, ``(trial_id, row)`` observations, and replace an experiment's
        ``algorithm_state`` (``(experiment_id, state)``). The controller's one write per
        event: a crash leaves either all of it or none (never a plan without its trials)."""
        updates = [{"_id": t.id, **self._trial_values(t)} for t in save]
        inserts = [self._trial_values(t) for t in new]
        # A value a trial printed may hold a NUL byte, which PostgreSQL's text refuses: one
        # bad line must not fail every later write of the experiment.
        rows = [{"trial_id": tid, "time": o.time, "metric_name": o.metric_name, "value": o.value.replace("\x00", "\ufffd")}
                for tid, o in samples]

        def write(conn: Connection) -> list[int]:
            if updates:
                conn.execute(_UPDATE_TRIAL, updates)
            ids: list[int] = []
            if inserts:
                result = conn.execute(
                    trials.insert().returning(trials.c.id, sort_by_parameter_order=True), inserts
                )
                ids = [row[0] for row in result]
            if rows:
                conn.execute(observations.insert(), rows)
            if algorithm_state is not None:
                _upsert_state(conn, *algorithm_state)
            return ids

        try:
            ids = self._retry(write)
        except IntegrityError as exc:
            if new and _duplicate(exc):
                raise ConflictError("a trial with that name already exists") from None
            raise  # not a name taken: no retry fixes it (a conflict would keep the experiment resumable for ever)
        for t, trial_id in zip(new, ids, strict=True):
            t.id = trial_id

    def add_trials(self, new: list[TrialRecord]) -> list[TrialRecord]:
        """Insert trials in one transaction; returns them with their ids set."""
        self.write_trials(new=new)
        return new

    def save_trial(self, t: TrialRecord, new_observations: Iterable[ObservationRow] = ()) -> None:
        """Write a trial's state (and any new observations) in one transaction."""
        self.write_trials(save=[t], samples=((t.id, o) for o in new_observations))

    def list_trials(self, exp_id: int, states: Iterable[str] | None = None, limit: int | None = None,
                    offset: int = 0, updated_since: float | None = None) -> list[TrialRecord]:
        """The experiment's trials, oldest first; of some states, a page, or those written
        after ``updated_since`` (seconds since the epoch)."""
        query = trials.select().where(trials.c.experiment_id == exp_id).order_by(trials.c.id)
        if updated_since is not None:
            query = query.where(trials.c.updated_at > updated_since)
        if states is not None:
            query = query.where(trials.c.state.in_(list(states)))
        if limit is not None or offset:
            query = query.limit(limit).offset(offset)
        with self._read() as conn:
            return [self._trial(r) for r in conn.execute(query)]

    def get_trial(self, namespace: str, name: str) -> tuple[ExperimentRecord, TrialRecord]:
        query = (
            sa.select(trials, experiments.c.namespace)
            .join(experiments, experiments.c.id == trials.c.experiment_id)
            .where(experiments.c.namespace == namespace, trials.c.name == name)
        )
        with self._read() as conn:
            row = conn.execute(query).first()
        if row is None:
            raise NotFoundError(f"trial {namespace}/{name} not found")
        trial = self._trial(row)
        return self.get_experiment_by_id(trial.experiment_id), trial

    # -- observation logs --------------------------------------------------------------


    def observations(self, trial_id: int, metric_name: str | None = None) -> list[ObservationRow]:
        query = (
            sa.select(observations.c.time, observations.c.metric_name, observations.c.value)
            .where(observations.c.trial_id == trial_id)
            .order_by(observations.c.time, observations.c.id)
        )
        if metric_name is not None:
            query = query.where(observations.c.metric_name == metric_name)
        with self._read() as conn:
            return [ObservationRow(r.time, r.metric_name, r.value) for r in conn.execute(query)]

    def metric_series(self, exp_id: int, metric_name: str, trial_ids: Iterable[int] | None = None) -> dict[int, list[str]]:
        """Every trial's (or the given trials') values of one metric, in time order, in one query."""
        query = (
            sa.select(observations.c.trial_id, observations.c.value)
            .join(trials, trials.c.id == observations.c.trial_id)
            .where(trials.c.experiment_id == exp_id, observations.c.metric_name == metric_name)
            .order_by(observations.c.trial_id, observations.c.time, observations.c.id)
        )
        if trial_ids is not None:
            query = query.where(observations.c.trial_id.in_(list(trial_ids)))
        out: dict[int, list[str]] = {}
        with self._read() as conn:
            for row in conn.execute(query):
                out.setdefault(row.trial_id, []).append(row.value)
        return out

    def clear_observations(self, trial_id: int) -> None:
        self._retry(lambda c: c.execute(observations.delete().where(observations.c.trial_id == trial_id)))

    # -- algorithm state ---------------------------------------------------------------

    def algorithm_state(self, exp_id: int) -> dict[str, Any] | None:
        with self._read() as conn:
            row = conn.execute(
                sa.select(algorithm_state.c.state).where(algorithm_state.c.experiment_id == exp_id)
            ).first()
        return None if row is None else json.loads(row.state)

    def save_algorithm_state(self, exp_id: int, state: dict[str, Any]) -> None:
        self._retry(lambda conn: _upsert_state(conn, exp_id, state))

