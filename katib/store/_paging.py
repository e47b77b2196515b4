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
from collections.abc import Iterable
from typing import TYPE_CHECKING

import sqlalchemy as sa

from katib.errors import KatibError

from ._records import ExperimentRecord, TrialRecord
from ._schema import trials

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


__all__ = ["InvalidContinueToken", "decode_token", "encode_token", "iter_trials", "latest_trial", "trial_page"]
