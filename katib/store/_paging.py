"""Trials a page at a time by keyset, Kubernetes-style: each page ends with an opaque
``continue`` token that says where the next one starts (after the last trial's id), so
a page costs the same at trial 100,000 as at trial 1 (no ``OFFSET`` skipping rows) and a
trial inserted meanwhile neither shifts nor repeats what a reader already has.

The token is base64url of ``{"v", "e" (the experiment's uid), "a" (the last id), "s"
(the state filter)}`` and a checksum of that: it grants nothing (a caller who may read
the experiment may read every page of it), but one edited, cut short, or taken from
another experiment or filter is refused with :class:`InvalidContinueToken` instead of
quietly answering a wrong page.

>>> from katib.store import Store, TrialRecord
>>> store = Store("sqlite://")
>>> rec = store.create_experiment("ns", "e", {}, {}, "/w")
>>> _ = store.add_trials([TrialRecord(id=0, experiment_id=rec.id, name=f"e-{i}", state="Succeeded",
...                                   assignments=[]) for i in range(3)])
>>> first, token = trial_page(store, rec, limit=2)
>>> [t.name for t in first], token is not None
(['e-0', 'e-1'], True)
>>> rest, token = trial_page(store, rec, limit=2, token=token)
>>> [t.name for t in rest], token
(['e-2'], None)
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa

from katib.errors import KatibError

from ._derived import STORED_BYTES, trial_counts, weigh
from ._records import ExperimentRecord, ObservationRow, TrialRecord
from ._schema import experiments, observations, trials

if TYPE_CHECKING:
    from ._store import Store

_VERSION = 1


class InvalidContinueToken(KatibError):
    """A ``continue`` token that this server did not hand out for this listing (HTTP 400)."""


_SALT = b"katib-continue:"
_BAD = "continue: not a token this server handed out for this listing"


def _checksum(body: bytes, salt: bytes) -> str:
    return hashlib.sha256(salt + body).hexdigest()[:16]


def seal_token(data: dict[str, object], salt: bytes = _SALT) -> str:
    """``data`` (and this format's version) as a continue token: base64url JSON and a
    checksum of it under ``salt`` (one per kind of listing)."""
    body = json.dumps({"v": _VERSION, **data}, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(body).decode().rstrip("=") + "." + _checksum(body, salt)


def open_token(token: str, salt: bytes = _SALT) -> dict[str, object]:
    """What ``seal_token`` sealed; :class:`InvalidContinueToken` when the token does not
    decode, was changed or cut short, or is of another version."""
    head, dot, check = token.partition(".")
    try:
        body = base64.urlsafe_b64decode(head + "=" * (-len(head) % 4))
        data = json.loads(body)
    except (binascii.Error, ValueError):
        raise InvalidContinueToken(f"{_BAD} (it does not decode); start again without it") from None
    if not dot or check != _checksum(body, salt) or not isinstance(data, dict):
        raise InvalidContinueToken(f"{_BAD} (its checksum does not match: it was changed or cut short)")
    if data.get("v") != _VERSION:
        raise InvalidContinueToken(f"{_BAD} (version {data.get('v')!r}; this server reads {_VERSION})")
    return data


def encode_token(rec: ExperimentRecord, after: int, states: Iterable[str] | None = None) -> str:
    """The token of the page that starts after trial id ``after``."""
    return seal_token({"e": rec.uid, "a": after, "s": sorted(states) if states is not None else None})


def decode_token(token: str, rec: ExperimentRecord, states: Iterable[str] | None = None) -> int:
    """The trial id a token's page starts after; :class:`InvalidContinueToken` naming
    what is wrong when it is not one of this listing's."""
    bad = _BAD
    data = open_token(token)
    if data.get("e") != rec.uid:
        raise InvalidContinueToken(f"{bad} (it belongs to another experiment, or one deleted and created again)")
    if data.get("s") != (sorted(states) if states is not None else None):
        raise InvalidContinueToken(f"{bad} (it was made for another state filter: keep the filter across pages)")
    after = data.get("a")
    if not isinstance(after, int) or isinstance(after, bool) or after < 0:
        raise InvalidContinueToken(f"{bad} (its position is not a trial id)")
    return after


def trial_page(store: Store, rec: ExperimentRecord, limit: int, token: str | None = None,
               states: Iterable[str] | None = None) -> tuple[list[TrialRecord], str | None]:
    """At most ``limit`` of the experiment's trials, oldest first, after ``token``'s
    position (from the start without one), and the next page's token (None: no more)."""
    if limit < 1:
        raise ValueError("limit must be at least 1")
    wanted = sorted(states) if states is not None else None
    after = decode_token(token, rec, wanted) if token else 0
    c = trials.c
    query = (trials.select().where(c.experiment_id == rec.id, c.id > after)
             .order_by(c.id).limit(limit + 1))
    if wanted is not None:
        query = query.where(c.state.in_(wanted))
    with store._read() as conn:
        rows = [store._trial(r) for r in conn.execute(query)]
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (encode_token(rec, rows[-1].id, wanted) if more else None)


def latest_trial(store: Store, exp_id: int, states: Iterable[str]) -> TrialRecord | None:
    """The trial of these states that ended last (by completion time, then id), read
    alone: what ``views.last_failure`` shows, without reading every failed trial."""
    c = trials.c
    query = (trials.select().where(c.experiment_id == exp_id, c.state.in_(list(states)))
             .order_by(sa.func.coalesce(c.completion_time, 0.0).desc(), c.id.desc()).limit(1))
    with store._read() as conn:
        row = conn.execute(query).first()
    return None if row is None else store._trial(row)


def iter_trials(store: Store, rec: ExperimentRecord, page: int = 1000,
                states: Iterable[str] | None = None) -> Iterable[TrialRecord]:
    """Every trial of the experiment, oldest first, read ``page`` at a time."""
    token: str | None = None
    while True:
        rows, token = trial_page(store, rec, page, token, states)
        yield from rows
        if token is None:
            return


def experiment_page(store: Store, limit: int, max_bytes: int, start: int = 0, namespace: str | None = None,
                    namespaces: Collection[str] | None = None) -> tuple[list[ExperimentRecord], int | None]:
    """Experiments by id from id ``start`` on (of ``namespace`` if given, and only of
    ``namespaces`` if given: those the reader may read), at most ``limit`` of them and
    stopping before the one that would bring what they weigh past ``max_bytes`` (a page
    holds its first whatever it weighs); and the id the next page starts at (None: no more).

    What an experiment weighs is its stored spec and status and the trial lists its status
    derives, measured in the database (lengths, counts) a few rows at a time before any
    is read and parsed: a page reads and holds about ``max_bytes`` whatever the specs weigh."""
    if limit < 1:
        raise ValueError("limit must be at least 1")
    c = experiments.c
    where = [c.id >= start]
    if namespace is not None:
        where.append(c.namespace == namespace)
    if namespaces is not None:
        where.append(c.namespace.in_(sorted(namespaces)))
    picked: list[int] = []
    spent, chunk, low = 0, 16, start
    following: int | None = None
    with store._read() as conn:
        while following is None:
            rows = conn.execute(sa.select(c.id, STORED_BYTES).where(*where, c.id >= low).order_by(c.id).limit(chunk)).all()
            counts = trial_counts(conn, [r[0] for r in rows]) if rows else {}
            for exp_id, stored in rows:
                size = weigh(int(stored or 0), counts[exp_id])
                if picked and (len(picked) >= limit or spent + size > max_bytes):
                    following = exp_id
                    break
                picked.append(exp_id)
                spent += size
            if len(rows) < chunk:
                break
            low, chunk = rows[-1][0] + 1, min(chunk * 2, 1024)
        if not picked:
            return [], None
        query = experiments.select().where(*where, c.id <= picked[-1]).order_by(c.id)
        return store._experiments(conn, conn.execute(query)), following


_OBSERVATIONS_SALT = b"katib-observations-continue:"  # never taken for a trial page's token


@dataclass(frozen=True)
class ObservationPage:
    """A page of a trial's observation log: ``rows`` (oldest first); ``more``, the token
    of the next page while more follow now (None: this page reached the log's end);
    ``resume``, the token of the position after ``rows`` whether or not more follow (what
    a reader passes later to read only what was reported since); ``earlier``, how many
    observations precede ``rows`` (counted only for a ``tail``)."""

    rows: list[ObservationRow]
    more: str | None
    resume: str
    earlier: int | None = None


def _observation_token(rec: ExperimentRecord, t: TrialRecord, metric: str | None, at: tuple[float, int] | None) -> str:
    return seal_token({"e": rec.uid, "t": t.id, "m": metric, "p": list(at) if at else None}, _OBSERVATIONS_SALT)


def _observation_position(token: str, rec: ExperimentRecord, t: TrialRecord, metric: str | None) -> tuple[float, int] | None:
    data = open_token(token, _OBSERVATIONS_SALT)
    if data.get("e") != rec.uid or data.get("t") != t.id:
        raise InvalidContinueToken(f"{_BAD} (it belongs to another trial, or one deleted and created again)")
    if data.get("m") != metric:
        raise InvalidContinueToken(f"{_BAD} (it was made for another metric filter: keep the filter across pages)")
    at = data.get("p")
    if at is None:
        return None
    if (isinstance(at, list) and len(at) == 2 and isinstance(at[0], (int, float)) and not isinstance(at[0], bool)
            and isinstance(at[1], int) and not isinstance(at[1], bool) and at[1] >= 0):
        return float(at[0]), at[1]
    raise InvalidContinueToken(f"{_BAD} (its position is not an observation's)")


def observation_page(store: Store, rec: ExperimentRecord, t: TrialRecord, limit: int, token: str | None = None,
                     metric: str | None = None, tail: bool = False) -> ObservationPage:
    """At most ``limit`` of the trial's observations (of ``metric`` only, if given), in
    time order (then id, the order they were stored): the first after ``token``'s
    position (from the start without one), or with ``tail`` the last ``limit`` of them.
    Keyset on (time, id) by an index: a page costs the same at report 500,000 as at 1,
    and reports added meanwhile land after it, never shifting it (one stored later under an
    earlier time stamp, a pushed value's own, is not read again by a reader already past it)."""
    if limit < 1:
        raise ValueError("limit must be at least 1")
    c = observations.c
    query = sa.select(c.id, c.time, c.metric_name, c.value).where(c.trial_id == t.id)
    if metric is not None:
        query = query.where(c.metric_name == metric)
    earlier: int | None = None
    with store._read() as conn:
        if tail:
            rows = list(conn.execute(query.order_by(c.time.desc(), c.id.desc()).limit(limit)))[::-1]
            more = False
            if len(rows) == limit:
                counted = sa.select(sa.func.count()).select_from(observations).where(c.trial_id == t.id)
                if metric is not None:
                    counted = counted.where(c.metric_name == metric)
                earlier = max(0, int(conn.execute(counted).scalar() or 0) - limit)
            else:
                earlier = 0
            at = None
        else:
            at = _observation_position(token, rec, t, metric) if token else None
            if at is not None:  # (time, id) > at, written so that the index's range on time serves it
                query = query.where(c.time >= at[0], sa.or_(c.time > at[0], c.id > at[1]))
            rows = list(conn.execute(query.order_by(c.time, c.id).limit(limit + 1)))
            more = len(rows) > limit
            rows = rows[:limit]
    end = (rows[-1].time, rows[-1].id) if rows else at
    resume = _observation_token(rec, t, metric, end)
    return ObservationPage([ObservationRow(r.time, r.metric_name, r.value) for r in rows],
                           resume if more else None, resume, earlier)


__all__ = ["InvalidContinueToken", "ObservationPage", "decode_token", "encode_token", "experiment_page", "iter_trials", "latest_trial",
           "observation_page", "trial_page"]
