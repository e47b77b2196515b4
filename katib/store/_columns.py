"""Reads for the viewer's summary of a large experiment: only the columns it shows (no
labels, conditions or executor handle to decode; ``summary_columns``: only the values
shown, picked out of the JSON by the database), and a cheap stamp that changes whenever
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
from collections.abc import Mapping, Sequence
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


# -- the summary's columns, aggregated by the database --------------------------------------
#
# ``summary_rows`` hands Python every trial's assignments and observation to decode: at
# 100,000 trials that is 200,000 ``json.loads`` and 1.2 million Python values (6 of the 7
# seconds a summary took). Here one query has the database pick out just the values shown
# (each parameter's assigned value; each metric's under its strategy, ``min``, ``max`` or
# ``latest``, as ``shown_value`` picks it) and aggregate each column into one JSON array
# (SQLite's ``json_group_array``, PostgreSQL's ``json_agg``): Python decodes a dozen arrays.
# An assignment is read at its parameter's position in the list (where the controller
# writes it); the few trials whose list is in another order are read again whole.

_BASE = ("id", "name", "state", "created_at", "start_time", "completion_time")
# The times as the viewer shows them, rounded to the millisecond by the database (a trial
# not started, or not ended, has no start or duration): the keys after the base columns.
_TIMES = ("created", "started", "duration")
_SQLITE_TIMES = ("round(created_at, 3)", "CASE WHEN start_time <> 0 THEN round(start_time, 3) END",
                 "CASE WHEN start_time <> 0 AND completion_time <> 0 THEN round(completion_time - start_time, 3) END")
# PostgreSQL rounds a float8 to the millisecond as round(x * 1000) / 1000, in float8 (the
# division is correctly rounded: the double nearest the millisecond, as through numeric, at a
# third of the cost; only an exact half millisecond may go the other way, ties to even).
_POSTGRES_TIMES = tuple(
    e.replace("round(created_at, 3)", "round(created_at * 1000) / 1000")
     .replace("round(start_time, 3)", "round(start_time * 1000) / 1000")
     .replace("round(completion_time - start_time, 3)", "round((completion_time - start_time) * 1000) / 1000")
    for e in _SQLITE_TIMES)


def _path_key(name: str) -> str | None:
    """``name`` as a quoted SQLite JSON path label, or None when it cannot be one."""
    return None if '"' in name or "\\" in name else f'"{name}"'


def _fallback(strategy: str, value: str, latest: str) -> str:
    """``value`` (a metric's under ``strategy``) with ``shown_value``'s fallback: a ``min`` or
    ``max`` that is ``unavailable`` (a text metric) is the ``latest`` value, as Katib picks it."""
    if strategy not in ("min", "max"):
        return value
    return f"CASE WHEN {value} = 'unavailable' THEN coalesce({latest}, 'unavailable') ELSE {value} END"


def _sqlite(params: Sequence[str], metrics: Mapping[str, str], bind: dict[str, Any]) -> tuple[list[str], str]:
    cols = [f"json_group_array({c})" for c in ("id", "name", "state", *_SQLITE_TIMES)]
    for i in range(len(params)):
        bind[f"pv{i}"] = f"$[{i}].value"
        cols.append(f"json_group_array(json_extract(assignments, :pv{i}))")
    for i, (name, strategy) in enumerate(metrics.items()):
        key = _path_key(name)
        if key is None:  # not sayable in a JSON path: look the key up instead
            bind[f"m{i}"], bind[f"s{i}"], bind[f"l{i}"] = name, "$." + strategy, "$.latest"
            value = (f"(SELECT {_fallback(strategy, f'json_extract(j.value, :s{i})', f'json_extract(j.value, :l{i})')} "
                     f"FROM json_each(observation) j WHERE j.key = :m{i})")
        else:
            bind[f"mp{i}"], bind[f"ml{i}"] = f"$.{key}.{strategy}", f"$.{key}.latest"
            value = _fallback(strategy, f"json_extract(observation, :mp{i})", f"json_extract(observation, :ml{i})")
        cols.append(f"json_group_array({value})")
    # The trials whose assignments are not in the parameters' order.
    if not params:
        return cols, "0"
    bind["pcount"] = len(params)
    if len(params) == 1:
        bind["pn"] = params[0]
        names = "json_extract(assignments, '$[0].name') != :pn"
    else:
        paths = ", ".join(f"'$[{i}].name'" for i in range(len(params)))
        bind["pn"] = json.dumps(list(params), ensure_ascii=False, separators=(",", ":"))
        names = f"json_extract(assignments, {paths}) != :pn"
    return cols, f"coalesce({names} OR json_array_length(assignments) != :pcount, 1)"


def _postgres(params: Sequence[str], metrics: Mapping[str, str], bind: dict[str, Any]) -> tuple[list[str], str]:
    cols = [f"json_agg({c})" for c in ("id", "name", "state", *_POSTGRES_TIMES)]  # in the subquery's order (by id)
    for i in range(len(params)):
        cols.append(f"json_agg(a -> {i} ->> 'value')")
    for i, (name, strategy) in enumerate(metrics.items()):
        bind[f"m{i}"], bind[f"s{i}"] = name, strategy
        value = _fallback(strategy, f"o #>> ARRAY[CAST(:m{i} AS text), CAST(:s{i} AS text)]",
                          f"o #>> ARRAY[CAST(:m{i} AS text), 'latest']")
        cols.append(f"json_agg({value})")
    checks = [f"jsonb_array_length(a) != {len(params)}"] if params else []
    for i, name in enumerate(params):
        bind[f"p{i}"] = name
        checks.append(f"(a -> {i} ->> 'name') IS DISTINCT FROM :p{i}")
    return cols, " OR ".join(checks) or "false"


def summary_columns(store: Store, exp_id: int, params: Sequence[str], metrics: Mapping[str, str],
                    updated_since: float | None = None) -> dict[str, list[Any]]:
    """The experiment's trials, oldest first (or those written after ``updated_since``),
    as columns: ``id``, ``name``, ``state``, ``created``, ``started`` and ``duration``
    (seconds, to the millisecond; None when not started or not ended), then ``param:NAME`` for each of ``params`` (the assigned value, None
    when not assigned) and ``metric:NAME`` for each of ``metrics`` (name to strategy: the
    observation's value under it, None when the trial has none). Values are as stored:
    texts (or a JSON number where the JSON held one)."""
    bind: dict[str, Any] = {"exp": exp_id}
    where = "experiment_id = :exp"
    if updated_since is not None:
        bind["since"], where = updated_since, where + " AND updated_at > :since"
    if store.dialect == "postgresql":
        cols, odd = _postgres(params, metrics, bind)
        # jsonb: each row's JSON parsed once (OFFSET 0 keeps the subquery whole), not at each operator.
        rows = (f"SELECT {', '.join(_BASE)}, CAST(assignments AS jsonb) AS a, CAST(observation AS jsonb) AS o "
                f"FROM trials WHERE {where} ORDER BY id OFFSET 0")
        agg = f"SELECT {', '.join(cols)}, string_agg(CASE WHEN {odd} THEN CAST(id AS text) END, ',') FROM ({rows}) t"
    else:
        cols, odd = _sqlite(params, metrics, bind)
        agg = (f"SELECT {', '.join(cols)}, group_concat(CASE WHEN {odd} THEN id END) "
               f"FROM (SELECT id, name, state, created_at, start_time, completion_time, assignments, observation "
               f"FROM trials WHERE {where} ORDER BY id)")
    keys = ["id", "name", "state", *_TIMES, *(f"param:{p}" for p in params), *(f"metric:{m}" for m in metrics)]
    with store._read() as conn:
        *texts, odd_ids = conn.execute(sa.text(agg), bind).one()
        reordered: list[Any] = []
        if odd_ids and params:
            ids = [int(i) for i in str(odd_ids).split(",")]
            for start in range(0, len(ids), 500):
                reordered += conn.execute(sa.select(trials.c.id, trials.c.assignments)
                                          .where(trials.c.id.in_(ids[start:start + 500]))).all()
    loads = json.loads
    columns = {k: (loads(t) if isinstance(t, str) else list(t or [])) for k, t in zip(keys, texts, strict=True)}
    if reordered:  # assignments in another order (or missing): read them whole
        at = {trial_id: i for i, trial_id in enumerate(columns["id"])}
        for trial_id, assignments in reordered:
            values = {a.get("name"): a.get("value") for a in loads(assignments) if isinstance(a, dict)}
            for p in params:
                columns[f"param:{p}"][at[trial_id]] = values.get(p)
    return columns


def parameter_names(store: Store, exp_id: int) -> list[str]:
    """The names assigned in any of the experiment's trials, sorted (for an experiment
    whose spec lists no parameters)."""
    if store.dialect == "postgresql":
        sql = ("SELECT DISTINCT e ->> 'name' FROM trials, json_array_elements(CAST(assignments AS json)) e "
               "WHERE experiment_id = :exp")
    else:
        sql = ("SELECT DISTINCT json_extract(j.value, '$.name') FROM trials, json_each(trials.assignments) j "
               "WHERE experiment_id = :exp")
    with store._read() as conn:
        return sorted(str(r[0]) for r in conn.execute(sa.text(sql), {"exp": exp_id}) if r[0] is not None)
