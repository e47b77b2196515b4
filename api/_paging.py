"""Namespace-wide lists a page at a time, Kubernetes-style (``?limit=&continue=``): the
Kubernetes routes that list what every experiment of a namespace holds (its trials,
their pods, TrainJobs and events; the suggestions and OptimizationJobs that embed trials)
answer at most ``limit`` items, and never more than the server's ``page`` limit
(``KATIB_MAX_PAGE``); while more follow, the answer's ``metadata.continue`` is the token
of the next page.

A page walks the namespace's experiments in the order they were created (by id) and each
one's trials by keyset (:func:`katib.store.trial_page`, a chunk at a time), so a page
costs the same anywhere in the list and holds at most its page of objects in memory. The
token says where the next page starts: the experiment (its id and uid), the experiment's
own trial token for the trial to read next, and how many of that trial's items (a
TrainJob trial has a pod per node, a trial up to three events) were already answered.

Like the trials' own tokens it is base64url JSON and a checksum: it grants nothing, but
one edited, cut short, or made for another list, namespace or label selector is refused
(400, ``continue: …``) instead of quietly answering a wrong page. An experiment deleted
between two pages is passed over; one deleted and created again under the same id is
read from its start.

>>> from katib.store import Store, TrialRecord
>>> store = Store("sqlite://")
>>> recs = [store.create_experiment("ns", name, {}, {}, "/w") for name in ("a", "b")]
>>> for rec in recs:
...     _ = store.add_trials([TrialRecord(id=0, experiment_id=rec.id, name=f"{rec.name}-{i}", state="Succeeded",
...                                       assignments=[]) for i in range(2)])
>>> def names(token):
...     walk = walk_trials(store, store.list_experiments("ns"), start(token, "trials", "ns", None),
...                        lambda rec, t: [t.name])
...     items, spot = fill(walk, limit=3)
...     return [i() for i in items], next_token(store, spot, "trials", "ns", None)
>>> first, token = names(None)
>>> first
['a-0', 'a-1', 'b-0']
>>> names(token)
(['b-1'], None)
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

from fastapi import Query

from katib.store import (
    ExperimentRecord,
    InvalidContinueToken,
    Store,
    TrialRecord,
    open_token,
    seal_token,
    trial_page,
)

_CHUNK = 1000  # trials read from the store at once
Item = dict[str, Any]

# The query parameters of a paged list (as ``…/experiments/{name}/trials`` has them).
LIMIT = Query(None, ge=1, le=100_000, description="at most this many items (and at most the server's page, KATIB_MAX_PAGE)")
CONTINUE = Query(None, alias="continue", max_length=1024, description="the previous page's metadata.continue")


@dataclass(frozen=True)
class Position:
    """Where a page starts: experiment ``experiment`` (``uid``), at its trial ``trials``
    (the experiment's own trial-page token; None: its first trial), of whose items the
    first ``skip`` were answered already."""

    experiment: int
    uid: str
    trials: str | None = None
    skip: int = 0


@dataclass(frozen=True)
class Spot:
    """Where one item of a walk is: the ``row``-th trial of the chunk read at ``trials``
    (the experiment's trial token that chunk started from), its ``item``-th item."""

    rec: ExperimentRecord
    trials: str | None = None
    row: int = 0
    item: int = 0


# An entry of a walk: where it is, what it weighs against the page's budget, and how to
# build it (an experiment's suggestion object is built only once it is on the page).
Entry = tuple[Spot, int, Callable[[], Item]]


def _kept(item: Item) -> Callable[[], Item]:
    return lambda: item


_SALT = b"katib-list-continue:"  # not a trial page's token: never taken for one


def _selector_hash(selector: str | None) -> str:
    return hashlib.sha256((selector or "").encode()).hexdigest()[:16]


def encode(listing: str, namespace: str, selector: str | None, at: Position) -> str:
    return seal_token({"l": listing, "n": namespace, "q": _selector_hash(selector),
                       "e": at.experiment, "u": at.uid, "t": at.trials, "k": at.skip}, _SALT)


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def start(token: str | None, listing: str, namespace: str, selector: str | None) -> Position | None:
    """The position a ``continue`` token names (None without one: the list's start);
    :class:`InvalidContinueToken`, saying what is wrong, when it is not one this server
    handed out for this list."""
    if not token:
        return None
    bad = "continue: not a token this server handed out for this listing"
    data = open_token(token, _SALT)
    if data.get("l") != listing or data.get("n") != namespace:
        raise InvalidContinueToken(f"{bad} (it belongs to another list or namespace)")
    if data.get("q") != _selector_hash(selector):
        raise InvalidContinueToken(f"{bad} (it was made for another labelSelector: keep the selector across pages)")
    exp, uid, trials, skip = _count(data.get("e")), data.get("u"), data.get("t"), _count(data.get("k"))
    if exp is None or skip is None or not isinstance(uid, str) or not (trials is None or isinstance(trials, str)):
        raise InvalidContinueToken(f"{bad} (its position is not one)")
    return Position(exp, uid, trials, skip)


def resume(recs: Iterable[ExperimentRecord], at: Position | None) -> Iterator[tuple[ExperimentRecord, str | None, int]]:
    """The experiments a page reads, by id from ``at`` on, each with the trial token and
    the items to skip it starts at."""
    for rec in sorted(recs, key=lambda r: r.id):
        if at is None or rec.id > at.experiment:
            yield rec, None, 0
        elif rec.id == at.experiment:
            yield (rec, at.trials, at.skip) if rec.uid == at.uid else (rec, None, 0)


def walk_trials(store: Store, recs: Iterable[ExperimentRecord], at: Position | None,
                items_of: Callable[[ExperimentRecord, TrialRecord], list[Item]], chunk: int = _CHUNK) -> Iterator[Entry]:
    """Each item ``items_of`` makes of each trial of ``recs`` (after ``at``), one at a time."""
    for rec, trials, skip in resume(recs, at):
        while True:
            rows, after = trial_page(store, rec, chunk, trials)
            for row, t in enumerate(rows):
                for n, item in enumerate(items_of(rec, t)):
                    if n >= skip:
                        yield Spot(rec, trials, row, n), 1, _kept(item)
                skip = 0
            if after is None:
                break
            trials = after


def walk_one(rec: ExperimentRecord, items: list[Item], at: Position | None) -> Iterator[Entry]:
    """The items of one trial (its pods, asked for by name), after ``at``."""
    skip = at.skip if at is not None and (at.experiment, at.uid) == (rec.id, rec.uid) else 0
    for n, item in enumerate(items):
        if n >= skip:
            yield Spot(rec, None, 0, n), 1, _kept(item)


def walk_embedding(recs: Iterable[ExperimentRecord], at: Position | None, most: int,
                   build: Callable[[ExperimentRecord], Item]) -> Iterator[Entry]:
    """Objects, one per experiment of ``recs`` (after ``at``), that embed the experiment's
    most recent trials, at most ``most`` (:func:`recent_trials`): each weighs the trials it
    embeds, so :func:`fill` with a budget of ``most`` makes a page that embeds at most that
    many in all (or one object's); each is built only once it is on the page."""
    for rec, _, _ in resume(recs, at):
        yield Spot(rec), min(rec.status.trials or 0, most), partial(build, rec)


def fill(entries: Iterator[Entry], limit: int, budget: int | None = None) -> tuple[list[Callable[[], Item]], Spot | None]:
    """At most ``limit`` entries, and of at most ``budget`` weight together (though never
    none: a page holds its first entry whatever it weighs), with the spot of the first
    entry left out: None when none is (the list ends on this page)."""
    items: list[Callable[[], Item]] = []
    spent = 0
    for spot, weight, build in entries:
        if len(items) >= limit or (budget is not None and items and spent + weight > budget):
            return items, spot
        items.append(build)
        spent += weight
    return items, None


def next_token(store: Store, spot: Spot | None, listing: str, namespace: str, selector: str | None) -> str | None:
    """The token of the page that starts at ``spot`` (None: no page follows)."""
    if spot is None:
        return None
    trials = spot.trials
    if spot.row:  # the token of the chunk's first ``row`` trials read again: it ends before this one
        trials = trial_page(store, spot.rec, spot.row, spot.trials)[1]
    return encode(listing, namespace, selector, Position(spot.rec.id, spot.rec.uid, trials, spot.item))


def page_size(limit: int | None, page: int) -> int:
    """``?limit=`` capped at the server's page; the page without it."""
    return min(limit or page, page)


def chunk_for(size: int) -> int:
    """How many trials a walk for a page of ``size`` reads at once: the page and the one
    after it (which says whether another page follows), at most ``_CHUNK``."""
    return min(size + 1, _CHUNK)


def kube_list(kind: str, items: list[Item], token: str | None, api_version: str) -> dict[str, Any]:
    """A Kubernetes ``…List``; ``metadata.continue`` while more follow."""
    metadata: dict[str, Any] = {"resourceVersion": ""}
    if token:
        metadata["continue"] = token
    return {"apiVersion": api_version, "kind": f"{kind}List", "metadata": metadata, "items": items}


def recent_trials(store: Store, rec: ExperimentRecord, most: int) -> list[TrialRecord]:
    """The experiment's last ``most`` trials (oldest first): what an object that embeds
    its trials (a Suggestion's ``status.suggestions``, an OptimizationJob's
    ``status.trials``) holds, so one object is never bigger than a page of them."""
    total = rec.status.trials or 0
    return store.list_trials(rec.id, limit=most, offset=max(0, total - most))


__all__ = ["CONTINUE", "LIMIT", "Entry", "Position", "Spot", "chunk_for", "encode", "fill", "kube_list", "next_token", "page_size", "recent_trials",
           "resume", "start", "walk_embedding", "walk_one", "walk_trials"]
