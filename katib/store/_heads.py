"""Experiments by their light columns, for what walks a namespace's experiments on each
request: the lists of their trials, pods, TrainJobs, events, Suggestions and
OptimizationJobs, and ``/metrics``.

A spec can weigh megabytes and its status is derived from the trial rows, so reading an
experiment whole costs what it weighs. These reads take only its id, namespace, name and
uid (and filter on two small columns written with the spec: ``optimization_job`` and
``trainjob``, :func:`list_flags`), a chunk at a time by keyset on the id; an
:class:`ExperimentHead` reads the rest of its row, and derives its status, the first time
any of it is used. So a page reads whole only the experiments whose items it holds, and
stops reading heads once it is full; ``/metrics`` counts by SQL (:func:`experiment_census`).

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
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

import sqlalchemy as sa

from katib.errors import NotFoundError
from katib.spec import OPTIMIZATION_JOB_SOURCE, Condition, ExperimentStatus
from katib.spec._template import TRAINJOB_KIND

from ._records import ExperimentRecord
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
    meta = spec.get("metadata")
    annotations = meta.get("annotations") if isinstance(meta, dict) else None
    text = annotations.get(OPTIMIZATION_JOB_SOURCE) if isinstance(annotations, dict) else None
    try:
        source = json.loads(text) if text else None
    except (TypeError, ValueError):
        source = None
    body = spec.get("spec")
    template = body.get("trialTemplate") if isinstance(body, dict) else None
    job = template.get("trialSpec") if isinstance(template, dict) else None
    kind = job.get("kind") if isinstance(job, dict) else None
    return {"optimization_job": isinstance(source, dict),
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


class ExperimentHead(ExperimentRecord):
    """An experiment of which only the id, namespace, name and uid were read. The rest of
    its record (spec, status, workdir, …) is read from the store, and its status derived,
    the first time any of it is used; from then on it is that record. One deleted since
    its head was read (or deleted and created again under its id) raises
    :class:`~katib.errors.NotFoundError` then."""

    def __init__(self, store: Store, id: int, namespace: str, name: str, uid: str) -> None:
        self.id, self.namespace, self.name, self.uid = id, namespace, name, uid
        self._store = store

    @property
    def loaded(self) -> bool:
        """Whether the rest of the record was read."""
        return "spec" in self.__dict__

    def _load(self) -> None:
        full = self._store.get_experiment_by_id(self.id)
        if full.uid != self.uid:
            raise NotFoundError(f"experiment {self.namespace}/{self.name} not found")
        for name in _REST:
            self.__dict__[name] = getattr(full, name)

    def weight(self) -> int:
        """What reading the rest costs, measured in the database without reading it: the
        stored spec and status, and the trial lists its status derives (as
        ``experiment_page`` weighs a page of experiments)."""
        from ._paging import _listed_weight

        c = experiments.c
        with self._store._read() as conn:
            size = conn.execute(sa.select(sa.func.coalesce(sa.func.length(c.spec), 0)
                                          + sa.func.coalesce(sa.func.length(c.status), 0))
                                .where(c.id == self.id)).scalar()
            return int(size or 0) + _listed_weight(conn, [self.id])[self.id]


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
    early reads no more."""
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
        for row in rows:
            yield ExperimentHead(store, row[0], row[1], row[2], row[3])
        if len(rows) < chunk:
            return
        low, chunk = rows[-1][0] + 1, min(chunk * 2, 1024)


class CensusRow(NamedTuple):
    """One experiment as ``/metrics`` counts it: its conditions, and its trials by state."""

    namespace: str
    name: str
    conditions: list[Condition]
    trials: dict[str, int]


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


__all__ = ["CensusRow", "ExperimentHead", "experiment_census", "experiment_heads", "list_flags"]
