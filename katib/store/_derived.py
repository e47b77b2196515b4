"""The parts of an experiment's status that the trial rows already say, derived when the
status is read instead of stored: the counts (``trials``, ``trialsSucceeded``, …) and the
per-state trial lists (``runningTrialList``, …), as Katib's status shows them.

So a controller rewrites the stored status only when what is not derivable changes (its
conditions, times, optimal trial), never because a trial started or ended, and no reader
can see counts that disagree with the trials.

The counts are one ``GROUP BY`` on the ``(experiment_id, state)`` index, never a read of
every trial. A state's list is given only while that state holds at most ``LIST_LIMIT``
trials (the pending and running ones always do: the parallelism bounds them), so the
status of a 100,000-trial experiment is not a blob of 100,000 names: page the trials
(``GET …/trials?limit=&continue=``) to see them all.

>>> from katib.store import Store, TrialRecord
>>> store = Store("sqlite://")
>>> rec = store.create_experiment("ns", "e", {}, {"trials": 99}, "/w")
>>> _ = store.add_trials([TrialRecord(id=0, experiment_id=rec.id, name="e-1", state="Running",
...                                   assignments=[])])
>>> status = store.get_experiment("ns", "e").status
>>> status.trials, status.trials_running, status.running_trial_list
(1, 1, ['e-1'])
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ._schema import experiments, trials

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
# The name Katib's status gives each state: its count's key less "trials" (Pending for
# Created): what ``/metrics`` labels a count with.
STATE_NAMES = {state: count.removeprefix("trials").removeprefix("trial") for state, (count, _) in BY_STATE.items()}
# A state of more trials than this has its count in the status but not its list of names.
LIST_LIMIT = 1000
_GROUP = 256  # experiments whose trial names one query reads
DERIVED = frozenset({"trials", *(k for pair in BY_STATE.values() for k in pair)})


def stored(status: dict[str, Any]) -> dict[str, Any]:
    """``status`` without what is derived when read (what is written to the store)."""
    return {k: v for k, v in status.items() if k not in DERIVED}


def trial_counts(conn: Connection, ids: list[int]) -> dict[int, dict[str, int]]:
    """Each experiment's trials (by id) counted by state: one ``GROUP BY`` on the
    ``(experiment_id, state)`` index, never a read of the trials."""
    counts: dict[int, dict[str, int]] = {i: {} for i in ids}
    c = trials.c
    for exp_id, state, n in conn.execute(sa.select(c.experiment_id, c.state, sa.func.count())
                                         .where(c.experiment_id.in_(ids)).group_by(c.experiment_id, c.state)):
        counts[exp_id][state] = int(n)
    return counts


# What an experiment's spec and status weigh as stored, measured by the database without
# reading them out: what ``weigh`` starts from.
STORED_BYTES = (sa.func.coalesce(sa.func.length(experiments.c.spec), 0)
                + sa.func.coalesce(sa.func.length(experiments.c.status), 0))
# What a derived trial name weighs (a name of at most 63 characters, its quotes and comma).
_LISTED_NAME_BYTES = 72


def weigh(stored: int, counts: Mapping[str, int]) -> int:
    """What reading an experiment whole weighs, from what its spec and status weigh as
    stored (``STORED_BYTES``) and its trials by state (``trial_counts``): those and the
    trial lists ``derive`` adds, a name per trial of each state it lists. What a page of
    experiments, or of what a namespace's experiments hold, reads of them at most is
    measured by it (``experiment_page``, ``ExperimentHead.weight``)."""
    return stored + sum(n * _LISTED_NAME_BYTES for n in counts.values() if n <= LIST_LIMIT)


def derive(conn: Connection, statuses: dict[int, dict[str, Any]]) -> None:
    """Fill each experiment's status (by id) with the counts and lists its trials say."""
    if not statuses:
        return
    counts = trial_counts(conn, list(statuses))
    c = trials.c
    listed = {(exp_id, state) for exp_id, by_state in counts.items() for state, n in by_state.items()
              if n <= LIST_LIMIT and state in BY_STATE}
    names: dict[tuple[int, str], list[str]] = {}
    if listed:
        # Only the (experiment, state) pairs listed: never the rows of a state too big to list.
        wanted: dict[int, list[str]] = {}
        for exp_id, state in sorted(listed):
            wanted.setdefault(exp_id, []).append(state)
        # A few hundred experiments a query: SQLite refuses an expression deeper than 1,000
        # (a page of 1,000 experiments with trials was an OperationalError).
        groups = list(wanted.items())
        for at in range(0, len(groups), _GROUP):
            query = (sa.select(c.experiment_id, c.state, c.name)
                     .where(sa.or_(*(sa.and_(c.experiment_id == e, c.state.in_(s)) for e, s in groups[at:at + _GROUP])))
                     .order_by(c.id))
            for row in conn.execute(query):
                names.setdefault((row[0], row[1]), []).append(row[2])
    for exp_id, status in statuses.items():
        for key in DERIVED:
            status.pop(key, None)
        by_state = counts[exp_id]
        for state, (_, list_key) in BY_STATE.items():
            if (exp_id, state) in names:
                status[list_key] = names[(exp_id, state)]
        status["trials"] = sum(by_state.values())
        for state in COUNT_ORDER:  # the order Katib's status (and experiment_status) lists them
            status[BY_STATE[state][0]] = by_state.get(state, 0)


__all__ = ["DERIVED", "LIST_LIMIT", "STATE_NAMES", "STORED_BYTES", "derive", "stored", "trial_counts", "weigh"]
