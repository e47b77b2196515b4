"""Observation logs by trial name alone, as Katib's DBManager API addresses them.

Katib keys its ``observation_logs`` table by trial name; so does its gRPC API, which
carries no namespace. ``TrialLogs`` finds this store's trials by name (in any namespace)
and keeps the logs of trials it does not hold (a Katib control plane's, when our gRPC
server stands in for its DB manager) in a table of their own.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

from ._records import ExperimentRecord, ObservationRow, TrialRecord
from ._schema import experiments, external_observations, trials
from ._store import Store


class TrialLogs:
    """>>> logs = TrialLogs(Store("sqlite://"))
    >>> logs.add_external("t1", [ObservationRow(1.0, "loss", "0.5")])
    >>> [r.value for r in logs.external("t1")]
    ['0.5']
    """

    def __init__(self, store: Store) -> None:
        self.store = store

    def find_trials(self, name: str) -> list[tuple[ExperimentRecord, TrialRecord]]:
        """This store's trials called ``name``, in every namespace (oldest first)."""
        query = (
            sa.select(trials)
            .join(experiments, experiments.c.id == trials.c.experiment_id)
            .where(trials.c.name == name)
            .order_by(trials.c.id)
        )
        with self.store._read() as conn:
            rows = list(conn.execute(query))
        found = [Store._trial(r) for r in rows]
        return [(self.store.get_experiment_by_id(t.experiment_id), t) for t in found]

    def add_external(self, trial_name: str, rows: Iterable[ObservationRow], most: int | None = None) -> int | None:
        """Store the rows; with ``most``, only if the name would then hold at most that many:
        else nothing is stored and the count it holds is returned."""
        values = [{"trial_name": trial_name, "time": r.time, "metric_name": r.metric_name, "value": r.value}
                  for r in rows]
        if not values:
            return None
        held: list[int] = []

        def add(conn: Any) -> None:
            held.clear()
            if most is not None:
                c = external_observations.c
                n = conn.execute(sa.select(sa.func.count()).where(c.trial_name == trial_name)).scalar_one()
                if n + len(values) > most:
                    held.append(n)
                    return
            conn.execute(external_observations.insert(), values)

        self.store._retry(add)
        return held[0] if held else None

    def external(self, trial_name: str, metric_name: str | None = None, start: float | None = None,
                 end: float | None = None, limit: int | None = None) -> list[ObservationRow]:
        """The log in time order (then in the order it came), filtered as Katib's query is;
        at most ``limit`` rows, the first ones."""
        c = external_observations.c
        query = sa.select(c.time, c.metric_name, c.value).where(c.trial_name == trial_name).order_by(c.time, c.id)
        if metric_name:
            query = query.where(c.metric_name == metric_name)
        if start is not None:
            query = query.where(c.time >= start)
        if end is not None:
            query = query.where(c.time <= end)
        if limit is not None:
            query = query.limit(limit)
        with self.store._read() as conn:
            return [ObservationRow(r.time, r.metric_name, r.value) for r in conn.execute(query)]

    def delete_external(self, trial_name: str) -> None:
        self.store._retry(lambda conn: conn.execute(
            external_observations.delete().where(external_observations.c.trial_name == trial_name)))
