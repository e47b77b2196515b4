"""The parts of an experiment's status that the trial rows already say, derived when the
status is read instead of stored: the counts (``trials``, ``trialsSucceeded``, …) and the
per-state trial lists (``runningTrialList``, …), as Katib's status shows them.

So a controller rewrites the stored status only when what is not derivable changes (its
conditions, times, optimal trial), never because a trial started or ended, and no reader
can see counts that disagree with the trials.

>>> from katib.store import Store, TrialRecord
>>> store = Store("sqlite://")
>>> rec = store.create_experiment("ns", "e", {}, {"trials": 99}, "/w")
>>> _ = store.add_trials([TrialRecord(id=0, experiment_id=rec.id, name="e-1", state="Running",
...                                   assignments=[])])
>>> status = store.get_experiment("ns", "e").status
>>> status["trials"], status["trialsRunning"], status["runningTrialList"]
(1, 1, ['e-1'])
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ._schema import trials

# Katib's status keys for each trial state: (count, list).
BY_STATE = {
    "Created": ("trialsPending", "pendingTrialList"),
    "Running": ("trialsRunning", "runningTrialList"),
    "Succeeded": ("trialsSucceeded", "succeededTrialList"),
    "Failed": ("trialsFailed", "failedTrialList"),
    "Killed": ("trialsKilled", "killedTrialList"),
    "EarlyStopped": ("trialsEarlyStopped", "earlyStoppedTrialList"),
    "MetricsUnavailable": ("trialMetricsUnavailable", "metricsUnavailableTrialList"),
}
COUNT_ORDER = ("Succeeded", "Failed", "Killed", "Created", "Running", "EarlyStopped", "MetricsUnavailable")
DERIVED = frozenset({"trials", *(k for pair in BY_STATE.values() for k in pair)})


def stored(status: dict[str, Any]) -> dict[str, Any]:
    """``status`` without what is derived when read (what is written to the store)."""
    return {k: v for k, v in status.items() if k not in DERIVED}


def derive(conn: Connection, statuses: dict[int, dict[str, Any]]) -> None:
    """Fill each experiment's status (by id) with the counts and lists its trials say."""
    if not statuses:
        return
    names: dict[int, dict[str, list[str]]] = {i: {} for i in statuses}
    ids: Iterable[int] = statuses
    query = (sa.select(trials.c.experiment_id, trials.c.state, trials.c.name)
             .where(trials.c.experiment_id.in_(list(ids))).order_by(trials.c.id))
    for row in conn.execute(query):
        names[row.experiment_id].setdefault(row.state, []).append(row.name)
    for exp_id, status in statuses.items():
        for key in DERIVED:
            status.pop(key, None)
        by_state = names[exp_id]
        for state, (_, list_key) in BY_STATE.items():
            if by_state.get(state):
                status[list_key] = by_state[state]
        status["trials"] = sum(len(v) for v in by_state.values())
        for state in COUNT_ORDER:  # the order Katib's status (and experiment_status) lists them
            status[BY_STATE[state][0]] = len(by_state.get(state, []))


__all__ = ["DERIVED", "derive", "stored"]
