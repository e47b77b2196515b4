"""Reads for the viewer's summary of a large experiment: only the columns it shows (no
labels, conditions or executor handle to decode), and a cheap stamp that changes whenever
any trial of the experiment is written, so a summary computed once can be kept until then.

>>> from katib.store import Store, TrialRecord
>>> store = Store("sqlite://")
>>> rec = store.create_experiment("ns", "e", {}, {}, "/w")
>>> _ = store.add_trials([TrialRecord(id=0, experiment_id=rec.id, name="e-1", state="Succeeded",
...                                   assignments=[{"name": "x", "value": "1"}])])
>>> [(r.name, r.assignments) for r in summary_rows(store, rec.id)]
[('e-1', [{'name': 'x', 'value': '1'}])]
>>> trial_stamp(store, rec.id)[0]
1
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, NamedTuple

import sqlalchemy as sa

from ._schema import trials

if TYPE_CHECKING:
    from ._store import Store


class SummaryRow(NamedTuple):
    """What the viewer's summary reads of a trial (names as on ``TrialRecord``)."""

    id: int
    name: str
    state: str
    created_at: float
    start_time: float | None
    completion_time: float | None
    assignments: list[dict[str, Any]]
    observation: dict[str, Any] | None


def summary_rows(store: Store, exp_id: int, updated_since: float | None = None) -> list[SummaryRow]:
    """The experiment's trials, oldest first (or those written after ``updated_since``)."""
    c = trials.c
    query = (sa.select(c.id, c.name, c.state, c.created_at, c.start_time, c.completion_time, c.assignments, c.observation)
             .where(c.experiment_id == exp_id).order_by(c.id))
    if updated_since is not None:
        query = query.where(c.updated_at > updated_since)
    loads = json.loads
    with store._read() as conn:
        return [SummaryRow(r[0], r[1], r[2], r[3], r[4], r[5], loads(r[6]), loads(r[7]) if r[7] else None)
                for r in conn.execute(query)]


def trial_stamp(store: Store, exp_id: int) -> tuple[int, float | None]:
    """How many trials the experiment has, and when one was last written."""
    c = trials.c
    with store._read() as conn:
        count, last = conn.execute(sa.select(sa.func.count(c.id), sa.func.max(c.updated_at))
                                   .where(c.experiment_id == exp_id)).one()
    return int(count), last
