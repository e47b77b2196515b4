"""Experiments by their light columns, for what walks a namespace's experiments on each
request: the lists of their trials, pods, TrainJobs, events, Suggestions and
OptimizationJobs, and ``/metrics``.

A spec can weigh megabytes and its status is derived from the trial rows, so reading an
experiment whole costs what it weighs. These reads take only its id, namespace, name and
uid (and filter on two small columns written with the spec: ``optimization_job`` and
``trainjob``, :func:`list_flags`), a chunk at a time by keyset on the id. What else the
heads of a chunk need is read for several of them at once, the first time one needs it:
their trials counted by state (one ``GROUP BY``), their weights (the lengths of their spec
and status, from the one asked for on, twice as many each time), the trials of those with
few. An :class:`ExperimentHead` reads the rest of its row, and derives its status, the
first time any of it is used, or with others in one read (:meth:`ExperimentHead.read`).
So a page reads whole only the experiments whose items it holds (and a few read ahead),
in a few reads however many, and stops reading heads once it is full; ``/metrics``
counts by SQL (:func:`experiment_census`).

>>> from katib.store import Store
>>> store = Store("sqlite://")
>>> for name in ("a", "b"):
...     _ = store.create_experiment("ns", name, {"spec": {}}, {}, "/w")
>>> heads = list(experiment_heads(store, "ns"))
>>> [(h.name, h.loaded) for h in heads]
[('a', False), ('b', False)]
>>> heads[0].spec, heads[0].loaded, heads[1].loaded
({'spec': {}}, True, False)
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, NamedTuple

import sqlalchemy as sa

from katib.errors import NotFoundError
from katib.spec import TRAINJOB_KIND, Condition, ExperimentStatus, optimization_job_of

from ._derived import BY_STATE, STATE_NAMES, STORED_BYTES, trial_counts, weigh
from ._records import ExperimentRecord, TrialRecord
from ._schema import experiments, trials

if TYPE_CHECKING:
    from ._store import Store

_LIGHT = ("id", "namespace", "name", "uid")
_REST = tuple(f.name for f in dataclasses.fields(ExperimentRecord) if f.name not in _LIGHT)


def list_flags(spec: Mapping[str, Any]) -> dict[str, bool]:
    """The light columns written with a spec: ``optimization_job``, whether the experiment
    was written from an OptimizationJob (its annotation holds that job's JSON, an object:
    what ``katib.optimizationjobs.source_of`` reads), and ``trainjob``, whether its trials
    may be Trainer TrainJobs (its trial template's job is of kind ``TrainJob``, or of a
    kind a placeholder fills in when the trial is rendered).

    >>> list_flags({"spec": {"trialTemplate": {"trialSpec": {"kind": "TrainJob"}}}})
    {'optimization_job': False, 'trainjob': True}
    """
    body = spec.get("spec")
    template = body.get("trialTemplate") if isinstance(body, dict) else None
    job = template.get("trialSpec") if isinstance(template, dict) else None
    kind = job.get("kind") if isinstance(job, dict) else None
    return {"optimization_job": optimization_job_of(spec) is not None,
            "trainjob": isinstance(kind, str) and (kind == TRAINJOB_KIND or "${" in kind)}


class _Loaded:
    """A field of an :class:`ExperimentHead` beyond its light columns: read, with the
    rest of the row, the first time it is used."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, head: ExperimentHead | None, owner: type | None = None) -> Any:
        if head is None:
            return self
        if self.name not in head.__dict__:
            head._load()
        return head.__dict__[self.name]

    def __set__(self, head: ExperimentHead, value: Any) -> None:
        head.__dict__[self.name] = value


class _Chunk:
    """The heads one query read: their trials counted together, the first time one's count
    is asked for; weighed a few at a time from the one asked for on, the next time twice as
    many (a page of one weighs one or two, not a chunk of megabyte specs); their first
    trials read together."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.ids: list[int] = []
        self.heads: list[ExperimentHead | None] = []  # None: passed (what was read of it is not held here)
        self._counts: dict[int, dict[str, int]] | None = None
        self._weights: dict[int, int] = {}
        self._window = 1
        self._trials: dict[int, list[TrialRecord]] = {}  # read ahead, until taken

    def counts(self) -> dict[int, dict[str, int]]:
        if self._counts is None:
            with self.store._read() as conn:
                self._counts = trial_counts(conn, self.ids)
        return self._counts

    def weight(self, head: ExperimentHead) -> int:
        if head.id not in self._weights:
            ids = [i for i in self.ids[head._index:head._index + self._window] if i not in self._weights]
            self._window *= 2
            counts, c = self.counts(), experiments.c
            with self.store._read() as conn:
                stored = {i: n for i, n in conn.execute(sa.select(c.id, STORED_BYTES).where(c.id.in_(ids)))}
            self._weights.update((i, weigh(int(stored.get(i) or 0), counts[i])) for i in ids)
        return self._weights[head.id]

    def first_trials(self, head: ExperimentHead, limit: int) -> list[TrialRecord] | None:
        if head.id not in self._trials:
            counts, total = self.counts(), 0
            ids: list[int] = []
            for ahead in self.ids[head._index:]:
                n = sum(counts.get(ahead, {}).values())
                if n > limit or (ids and total + n > limit):
                    break
                ids.append(ahead)
                total += n
            if not ids:
                return None
            self._trials.update((i, []) for i in ids)
            c = trials.c
            with self.store._read() as conn:
                for row in conn.execute(trials.select().where(c.experiment_id.in_(ids)).order_by(c.experiment_id, c.id)):
                    self._trials[row.experiment_id].append(self.store._trial(row))
        rows = self._trials.pop(head.id)
        return rows if len(rows) <= limit else None  # more were added since they were counted


class ExperimentHead(ExperimentRecord):
    """An experiment of which only the id, namespace, name and uid were read. The rest of
    its record (spec, status, workdir, …) is read from the store, and its status derived,
    the first time any of it is used (or earlier, with others: :meth:`read`); from then on
    it is that record. One deleted since its head was read (or deleted and created again
    under its id) raises :class:`~katib.errors.NotFoundError` then."""

    def __init__(self, store: Store, id: int, namespace: str, name: str, uid: str, chunk: _Chunk | None = None) -> None:
        self.id, self.namespace, self.name, self.uid = id, namespace, name, uid
        self._store = store
        self._chunk = chunk if chunk is not None else _Chunk(store)
        self._index = len(self._chunk.ids)
        self._chunk.ids.append(id)
        self._chunk.heads.append(self)

    @property
    def loaded(self) -> bool:
        """Whether the rest of the record was read."""
        return "spec" in self.__dict__

    def _load(self) -> None:
        ExperimentHead.read([self])
        if not self.loaded:
            raise NotFoundError(f"experiment {self.namespace}/{self.name} not found")

    @staticmethod
    def read(heads: Sequence[ExperimentHead]) -> None:
        """Read the rest of the records of ``heads`` (of one store), those not read yet, in
        one read: one query of their rows, their statuses derived together. One deleted
        since its head was read (or created again under its id) is left unread."""
        wanted = {h.id: h for h in heads if not h.loaded}
        if not wanted:
            return
        store = next(iter(wanted.values()))._store
        c = experiments.c
        with store._read() as conn:
            rows = [row for row in conn.execute(experiments.select().where(c.id.in_(sorted(wanted))).order_by(c.id))
                    if row.uid == wanted[row.id].uid]
            records = store._experiments(conn, rows)
        for full in records:
            head = wanted[full.id]
            for name in _REST:
                head.__dict__[name] = getattr(full, name)

    def weight(self) -> int:
        """What reading the rest costs (``katib.store._derived.weigh``, as
        ``experiment_page`` weighs a page of experiments), measured in the database
        without reading it, with the heads after it in its chunk (as many as last time
        and as many again)."""
        return self._chunk.weight(self)

    def trial_count(self) -> int:
        """How many trials it has, counted (one ``GROUP BY`` on the trials' index) for
        every head of its chunk at once."""
        return sum(self._chunk.counts().get(self.id, {}).values())

    def first_trials(self, limit: int) -> list[TrialRecord] | None:
        """Its trials (oldest first) when it has at most ``limit`` (None: it has more: page
        them, ``trial_page``), read in one query with those of the heads after it in its
        chunk, as many as ``limit`` trials in all. What ``trial_page`` with no token
        answers when it ends there, for a walk of many experiments of few trials each."""
        return self._chunk.first_trials(self, limit)

    def following(self) -> list[ExperimentHead]:
        """The heads read after it in the same query, in order (those not yet passed by
        ``experiment_heads``)."""
        return [h for h in self._chunk.heads[self._index + 1:] if h is not None]


for _name in _REST:
    _field = _Loaded()
    _field.__set_name__(ExperimentHead, _name)
    setattr(ExperimentHead, _name, _field)


def experiment_heads(store: Store, namespace: str, start: int = 0, names: frozenset[str] | None = None,
                     optimization_job: bool = False, trainjob: bool = False) -> Iterator[ExperimentHead]:
    """The namespace's experiments by id from id ``start`` on, as heads: only those named
    ``names`` if given, only those written from an OptimizationJob, or whose trials may be
    TrainJobs, if asked (:func:`list_flags`). Read a chunk at a time (16 heads, doubling to
    1,024) as the caller goes on, each chunk in a read of its own: a caller that stops
    early reads no more. The heads of a chunk share their reads (their trials counted,
    weighed, their first trials: :meth:`ExperimentHead.trial_count`, ``weight``,
    ``first_trials``) and know the heads after them (``following``), so a caller can read
    several whole at once (:meth:`ExperimentHead.read`)."""
    c = experiments.c
    where = [c.namespace == namespace]
    if names is not None:
        where.append(c.name.in_(sorted(names)))
    if optimization_job:
        where.append(c.optimization_job == sa.true())
    if trainjob:
        where.append(c.trainjob == sa.true())
    low, chunk = start, 16
    while True:
        with store._read() as conn:
            rows = conn.execute(sa.select(c.id, c.namespace, c.name, c.uid).where(*where, c.id >= low)
                                .order_by(c.id).limit(chunk)).all()
        read = _Chunk(store)
        for row in rows:
            ExperimentHead(store, row[0], row[1], row[2], row[3], read)
        for at in range(len(rows)):
            head, read.heads[at] = read.heads[at], None  # once passed, held by the caller only
            assert head is not None
            yield head
        if len(rows) < chunk:
            return
        low, chunk = rows[-1][0] + 1, min(chunk * 2, 1024)


def refresh_list_flags(store: Store) -> int:
    """Write both list flags of every experiment again from its spec (:func:`list_flags`),
    one experiment at a time, and say how many changed: what to run once after a server of
    a version before migration 0013 ran on the migrated database (it writes experiments
    with both flags false: docs/scaling.md, *Upgrading*). An experiment written meanwhile
    is left as that write left it."""
    c = experiments.c
    with store._read() as conn:
        ids = list(conn.scalars(sa.select(c.id).order_by(c.id)))
    changed = 0
    for exp_id in ids:
        with store._read() as conn:
            row = conn.execute(sa.select(c.spec, c.updated_at, c.optimization_job, c.trainjob).where(c.id == exp_id)).first()
        if row is None:
            continue
        try:
            doc = json.loads(row.spec)
        except (ValueError, RecursionError):
            doc = {}
        flags = list_flags(doc if isinstance(doc, dict) else {})
        if (bool(row.optimization_job), bool(row.trainjob)) == (flags["optimization_job"], flags["trainjob"]):
            continue
        changed += store._retry(partial(_write_flags, exp_id, row.updated_at, flags))
    return changed


def _write_flags(exp_id: int, updated_at: float, flags: dict[str, bool], conn: sa.Connection) -> int:
    c = experiments.c
    return conn.execute(experiments.update().where(c.id == exp_id, c.updated_at == updated_at).values(**flags)).rowcount


class CensusRow(NamedTuple):
    """One experiment as ``/metrics`` counts it: its conditions, and its trials by state."""

    namespace: str
    name: str
    conditions: list[Condition]
    trials: dict[str, int]

    @property
    def counts(self) -> dict[str, int]:
        """Its trials counted as its status counts them, by the name the status gives each
        state (``Pending`` for ``Created``, …): every state, a state of none at 0."""
        return {STATE_NAMES[state]: self.trials.get(state, 0) for state in BY_STATE}


def experiment_census(store: Store, readable: Callable[[str], bool] | None = None) -> list[CensusRow]:
    """Every experiment (of the namespaces ``readable`` accepts, if given) with its
    conditions and its trials counted by state: its status as stored (a few conditions
    and times, never the derived lists) and one ``GROUP BY`` of the trials on their
    index. No spec is read."""
    c, t = experiments.c, trials.c
    with store._read() as conn:
        where = []
        if readable is not None:
            spaces = [ns for (ns,) in conn.execute(sa.select(c.namespace).distinct()) if readable(ns)]
            if not spaces:
                return []
            where.append(c.namespace.in_(sorted(spaces)))
        counts: dict[int, dict[str, int]] = {}
        for exp_id, state, n in conn.execute(sa.select(t.experiment_id, t.state, sa.func.count())
                                             .join(experiments, c.id == t.experiment_id).where(*where)
                                             .group_by(t.experiment_id, t.state)):
            counts.setdefault(exp_id, {})[state] = int(n)
        return [CensusRow(ns, name, ExperimentStatus.model_validate(json.loads(status)).conditions, counts.get(exp_id, {}))
                for exp_id, ns, name, status in conn.execute(sa.select(c.id, c.namespace, c.name, c.status).where(*where)
                                                             .order_by(c.id))]


__all__ = ["CensusRow", "ExperimentHead", "experiment_census", "experiment_heads", "list_flags", "refresh_list_flags"]
