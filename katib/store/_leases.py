"""Several ``katib server`` replicas on one database: heartbeats and leases.

Each replica has a row in ``replicas`` whose ``heartbeat`` it renews every second or so,
stamped with the *database's* clock, so replicas on machines whose clocks disagree still
judge each other the same way. An experiment's ``owner`` names the replica holding its
lease; the lease lapses when that replica's heartbeat is older than the lease time
(``ttl``). Every change of owner is a conditional update (the owner read is the owner
replaced), so two replicas never both hold one experiment, on SQLite as on PostgreSQL.

A replica that cannot renew in time stops touching what it held (the controller fences
its writes and launches by the last renewal it saw: ``katib.controller``); its renewal
then fails, since a lapsed heartbeat is never renewed, only registered afresh.

>>> leases = Leases(Store("sqlite://"), ttl=5.0)   # doctest: +SKIP
>>> leases.register("host:1234:99", "host", 1234)  # doctest: +SKIP
>>> leases.renew("host:1234:99")                   # doctest: +SKIP
True
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from katib.errors import ConflictError

from ._schema import experiment_requests, experiments, replicas, trials

if TYPE_CHECKING:
    from ._store import Store

REQUESTS = ("stop", "budget", "stop_trial", "retry_trial")


# A request this old was for a run that is gone (its sender waits 30 s at most for a stop).
REQUEST_MAX_AGE = 60.0


class LeaseLost(ConflictError):
    """This replica's lease lapsed (its heartbeat was not renewed in time, or it handed its
    experiments over): what it held is another replica's now, and it must not write or
    launch for it."""


@dataclass(frozen=True)
class Replica:
    """A replica as the database sees it: ``age`` is the seconds since its last heartbeat."""

    id: str
    host: str
    pid: int
    started_at: float
    age: float
    live: bool
    leases: int  # the experiments it holds


@dataclass(frozen=True)
class Request:
    """What another replica asked of the one running ``namespace/name``."""

    id: int
    experiment_id: int
    namespace: str
    name: str
    action: str
    trial: str | None
    reason: str | None


class Leases:
    """The replicas' heartbeats and the experiments' leases, in the store's database."""

    def __init__(self, store: Store, ttl: float = 5.0, own_pool: bool = False) -> None:
        """``own_pool``: on PostgreSQL, connections of its own, so a heartbeat never waits
        for a connection behind the server's busy controllers (``close`` releases them)."""
        if ttl <= 0:
            raise ValueError(f"lease time: must be positive (got {ttl})")
        self._own = own_pool and store.dialect == "postgresql"
        self.store = type(store)(store.url) if self._own else store
        self.ttl = ttl

    def close(self) -> None:
        if self._own:
            self.store.close()

    def _now(self) -> Any:
        """The database's clock, in seconds since the epoch."""
        if self.store.dialect == "postgresql":
            return sa.cast(sa.func.extract("epoch", sa.func.clock_timestamp()), sa.Float)
        return sa.literal_column("((julianday('now') - 2440587.5) * 86400.0)", sa.Float)

    def _stale(self) -> Any:
        return replicas.c.heartbeat < self._now() - self.ttl

    # -- heartbeats --------------------------------------------------------------------

    def register(self, replica_id: str, host: str, pid: int) -> None:
        """Start (or start again) this replica's heartbeat."""

        def register(conn: Connection) -> None:
            done = conn.execute(replicas.update().where(replicas.c.id == replica_id)
                                .values(heartbeat=self._now(), host=host, pid=pid)).rowcount
            if not done:
                conn.execute(replicas.insert().values(id=replica_id, host=host, pid=pid, started_at=time.time(),
                                                      heartbeat=self._now()))

        self.store._retry(register)

    def renew(self, replica_id: str) -> bool:
        """Renew the heartbeat; False when it had lapsed (or was never registered): the
        experiments it held may be another replica's now."""
        fresh = replicas.c.heartbeat >= self._now() - self.ttl
        return bool(self.store._retry(lambda c: c.execute(
            replicas.update().where(replicas.c.id == replica_id, fresh).values(heartbeat=self._now())).rowcount))

    def expire(self, replica_id: str) -> None:
        """Let the lease lapse now (a replica handing its experiments over as it stops)."""
        self.store._retry(lambda c: c.execute(replicas.update().where(replicas.c.id == replica_id).values(heartbeat=0.0)))

    def retire(self, replica_id: str) -> None:
        """Remove the replica's row, unless it still holds an experiment."""
        holds = sa.exists().where(experiments.c.owner == replica_id)
        self.store._retry(lambda c: c.execute(replicas.delete().where(replicas.c.id == replica_id, ~holds)))

    def reap(self, older_than: float = 3600.0) -> int:
        """Remove the rows of replicas silent for ``older_than`` seconds that hold nothing."""
        holds = sa.exists().where(experiments.c.owner == replicas.c.id)
        gone = replicas.c.heartbeat < self._now() - older_than
        return int(self.store._retry(lambda c: c.execute(replicas.delete().where(gone, ~holds)).rowcount))

    def replicas(self) -> list[Replica]:
        """Every registered replica, the live ones first, each with its lease count."""
        held = (sa.select(experiments.c.owner, sa.func.count().label("n"))
                .where(experiments.c.owner.is_not(None)).group_by(experiments.c.owner).subquery())
        query = (sa.select(replicas, (self._now() - replicas.c.heartbeat).label("age"), held.c.n)
                 .outerjoin(held, held.c.owner == replicas.c.id).order_by(replicas.c.id))
        with self.store._read() as conn:
            rows = [Replica(r.id, r.host, r.pid, r.started_at, float(r.age), float(r.age) <= self.ttl, int(r.n or 0))
                    for r in conn.execute(query)]
        return sorted(rows, key=lambda r: not r.live)

    def known(self, owner: str) -> bool:
        """Whether ``owner`` is a replica (live or lapsed), not a ``katib run`` process."""
        with self.store._read() as conn:
            return conn.execute(sa.select(replicas.c.id).where(replicas.c.id == owner)).first() is not None

    def alive(self, owner: str, fallback: Callable[[str], bool]) -> bool:
        """Whether ``owner`` holds its lease: by its heartbeat when it is a replica,
        else by ``fallback`` (a ``katib run`` process: its pid)."""
        with self.store._read() as conn:
            age = conn.execute(sa.select(self._now() - replicas.c.heartbeat).where(replicas.c.id == owner)).scalar()
        return fallback(owner) if age is None else float(age) <= self.ttl

    # -- leases ------------------------------------------------------------------------

    def holders(self) -> dict[tuple[str, str], str]:
        """``(namespace, name) -> replica`` for every experiment a live replica holds."""
        live = sa.select(replicas.c.id).where(~self._stale())
        query = (sa.select(experiments.c.namespace, experiments.c.name, experiments.c.owner)
                 .where(experiments.c.owner.in_(live)))
        with self.store._read() as conn:
            return {(r.namespace, r.name): r.owner for r in conn.execute(query)}

    def written(self, replica_id: str) -> dict[tuple[str, str], float]:
        """``(namespace, name) -> when a trial of it was last written``, for every
        experiment another live replica holds (one index lookup each)."""
        live = sa.select(replicas.c.id).where(~self._stale(), replicas.c.id != replica_id)
        last = sa.select(sa.func.max(trials.c.updated_at)).where(trials.c.experiment_id == experiments.c.id)
        query = (sa.select(experiments.c.namespace, experiments.c.name, last.scalar_subquery().label("last"))
                 .where(experiments.c.owner.in_(live)))
        with self.store._read() as conn:
            return {(r.namespace, r.name): float(r.last or 0.0) for r in conn.execute(query)}

    def owned(self, replica_id: str) -> list[tuple[int, str, str]]:
        """``(id, namespace, name)`` of the experiments ``replica_id`` holds."""
        query = (sa.select(experiments.c.id, experiments.c.namespace, experiments.c.name)
                 .where(experiments.c.owner == replica_id).order_by(experiments.c.id))
        with self.store._read() as conn:
            return [(r.id, r.namespace, r.name) for r in conn.execute(query)]

    def orphans(self) -> list[tuple[int, str, str, str]]:
        """``(id, namespace, name, owner)`` of the experiments held by a replica whose
        lease lapsed."""
        query = (sa.select(experiments.c.id, experiments.c.namespace, experiments.c.name, experiments.c.owner)
                 .join(replicas, replicas.c.id == experiments.c.owner).where(self._stale())
                 .order_by(experiments.c.id))
        with self.store._read() as conn:
            return [(r.id, r.namespace, r.name, r.owner) for r in conn.execute(query)]

    def hand_over(self, exp_id: int, current: str | None, to: str | None, lapsed: bool = False) -> bool:
        """Make ``to`` the experiment's owner (None: nobody) if ``current`` still is
        (``lapsed``: and its lease has lapsed). False when another change came first."""
        held = experiments.c.owner.is_(None) if current is None else experiments.c.owner == current
        where = [experiments.c.id == exp_id, held]
        if lapsed:
            where.append(sa.exists().where(replicas.c.id == current, self._stale()))

        def hand_over(conn: Connection) -> bool:
            if lapsed and self.store.dialect == "postgresql":
                # The lapsed replica's row, locked: its registering afresh (an update of that
                # row) comes wholly before this statement's snapshot or wholly after it.
                conn.execute(sa.select(replicas.c.id).where(replicas.c.id == current).with_for_update())
            return bool(conn.execute(experiments.update().where(*where).values(owner=to)).rowcount)

        return self.store._retry(hand_over)

    def release(self, exp_id: int, owner: str) -> bool:
        """Give the experiment up (it is left stopped), if ``owner`` still holds it."""
        return bool(self.store._retry(lambda c: c.execute(
            experiments.update().where(experiments.c.id == exp_id, experiments.c.owner == owner)
            .values(owner=None)).rowcount))

    # -- requests to the replica that runs an experiment --------------------------------

    def request(self, exp_id: int, action: str, trial: str | None = None, reason: str | None = None) -> None:
        if action not in REQUESTS:
            raise ValueError(f"action: must be one of {', '.join(REQUESTS)} (got {action!r})")
        self.store._retry(lambda c: c.execute(experiment_requests.insert().values(
            experiment_id=exp_id, action=action, trial=trial, reason=reason, created_at=self._now())))

    def withdraw(self, exp_id: int, action: str) -> None:
        """Drop the experiment's pending requests of one kind (a stop, on a resume)."""
        self.store._retry(lambda c: c.execute(experiment_requests.delete().where(
            experiment_requests.c.experiment_id == exp_id, experiment_requests.c.action == action)))

    def take_requests(self, replica_id: str, max_age: float = REQUEST_MAX_AGE) -> list[Request]:
        """The requests for experiments ``replica_id`` holds, oldest first; removed as read.
        One older than ``max_age`` seconds is dropped unanswered: it was for a run that has
        ended or moved on (a stop sent as the run ended, and nobody held it since), and
        carried out now it would stop, or retry in, a run its sender never saw."""
        query = (sa.select(experiment_requests, experiments.c.namespace, experiments.c.name,
                           (self._now() - experiment_requests.c.created_at).label("age"))
                 .join(experiments, experiments.c.id == experiment_requests.c.experiment_id)
                 .where(experiments.c.owner == replica_id).order_by(experiment_requests.c.id))

        def take(conn: Connection) -> list[Request]:
            rows = list(conn.execute(query))
            if rows:
                conn.execute(experiment_requests.delete().where(experiment_requests.c.id.in_([r.id for r in rows])))
            # By the database's clock, as the heartbeats: the servers' own clocks may differ.
            return [Request(r.id, r.experiment_id, r.namespace, r.name, r.action, r.trial, r.reason)
                    for r in rows if r.age <= max_age]

        return self.store._retry(take)


__all__ = ["LeaseLost", "Leases", "REQUESTS", "Replica", "Request"]
