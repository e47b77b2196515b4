"""Namespace-wide lists a page at a time, Kubernetes-style (``?limit=&continue=``): the
Kubernetes routes that list what every experiment of a namespace holds (its trials,
their pods, TrainJobs and events; the suggestions and OptimizationJobs that embed trials)
answer at most ``limit`` items, and never more than the server's ``page`` limit
(``KATIB_MAX_PAGE``); while more follow, the answer's ``metadata.continue`` is the token
of the next page.

A page walks the namespace's experiments in the order they were created (by id), by their
light columns only (:func:`katib.store.experiment_heads`: id, name, uid, a chunk at a
time, and no further than the page needs), and each one's trials by keyset
(:func:`katib.store.trial_page`, a chunk at a time), so a page costs the same anywhere in
the list and holds at most its page of objects in memory. An experiment's spec and
status are read only when an item on the page is made from them (an event is made from
the trial alone), and a page reads about the server's ``list_bytes`` of them at most
(:class:`Budget`; at least one experiment's, whatever it weighs), several in one read
(a walk of trials reads with an experiment those after it the page's items will likely
come from; a page of objects, those it holds once it is made). The token says where
the next page starts: the experiment (its id and uid), the experiment's own trial token
for the trial to read next, and how many of that trial's items (a TrainJob trial has a
pod per node, a trial up to three events) were already answered.

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
...     at = start(token, "trials", "ns", None)
...     walk = walk_trials(store, heads(store, "ns", at), at, lambda rec, t: [t.name])
...     items, spot = fill(walk, limit=3)
...     return built(items), next_token(store, spot, "trials", "ns", None)
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
from typing import Any

from fastapi import Query

from katib.errors import NotFoundError
from katib.store import (
    ExperimentHead,
    ExperimentRecord,
    InvalidContinueToken,
    Store,
    TrialRecord,
    experiment_heads,
    open_token,
    seal_token,
    trial_page,
)

_CHUNK = 1000  # trials read from the store at once
# What one read of several experiments whole may weigh: reading them together saves
# queries, not bytes, and a read holds all of them at once, as text and parsed.
_READ_BYTES = 1 << 20
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
# build it (an experiment's suggestion object is built only once it is on the page; None
# when the experiment was deleted meanwhile). No build at all: the page ends here, having
# read what it may of experiments (``Budget``).
Build = Callable[[], Item | None]
Entry = tuple[Spot, int, Build | None]


def _kept(item: Item) -> Build:
    return lambda: item


class Budget:
    """What one page may read of experiments whole: about ``max_bytes`` (the server's
    ``list_bytes``) of stored spec and status, measured in the database before each is
    read (``ExperimentHead.weight``), and at least one experiment whatever it weighs.

    ``items`` is the page's size: a walk of trials that reads an experiment reads with it,
    in one read, those after it that the page's items will likely come from (``admits``)."""

    def __init__(self, max_bytes: int, items: int = 1) -> None:
        self.max_bytes, self.items, self.spent, self.read = max_bytes, items, 0, 0

    def admits(self, rec: ExperimentRecord, answered: int | None = None) -> bool:
        """Whether the page may read ``rec`` too (and counts it when it may). Given how
        many items the page holds already (``answered``), ``rec`` is read now, and with it
        (one read, of at most a MiB unless ``rec`` weighs more) the heads after it in its
        chunk that hold trials, while they fit what the page may read and until their
        trials, at an item each, could make the rest of the page and the item after it: a
        guess, so a page may read one it holds nothing of (within ``max_bytes``), or read
        again for the items it still lacks."""
        weight = rec.weight() if isinstance(rec, ExperimentHead) else 0
        if self.read and self.spent + weight > self.max_bytes:
            return False
        self.spent, self.read = self.spent + weight, self.read + 1
        if answered is not None and isinstance(rec, ExperimentHead) and not rec.loaded:
            ExperimentHead.read(self._ahead(rec, self.items + 1 - answered))
        return True

    def _ahead(self, rec: ExperimentHead, wanted: int) -> list[ExperimentHead]:
        batch, spent, read, trials = [rec], self.spent, rec.weight(), rec.trial_count()
        for head in rec.following():
            if trials >= wanted:
                break
            if head.loaded or not head.trial_count():
                continue
            weight = head.weight()
            if spent + weight > self.max_bytes or read + weight > _READ_BYTES:
                break
            batch.append(head)
            spent, read, trials = spent + weight, read + weight, trials + head.trial_count()
        return batch


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


def heads(store: Store, namespace: str, at: Position | None, names: frozenset[str] | None = None,
          optimization_job: bool = False, trainjob: bool = False) -> Iterator[ExperimentHead]:
    """The namespace's experiments a page walks, by id from ``at``'s on, by their light
    columns (:func:`katib.store.experiment_heads`, with its filters)."""
    return experiment_heads(store, namespace, at.experiment if at else 0, names, optimization_job, trainjob)


def resume(recs: Iterable[ExperimentRecord], at: Position | None) -> Iterator[tuple[ExperimentRecord, str | None, int]]:
    """The experiments a page reads (``recs``, in the order of their ids), from ``at``
    on, each with the trial token and the items to skip it starts at."""
    for rec in recs:
        if at is None or rec.id > at.experiment:
            yield rec, None, 0
        elif rec.id == at.experiment:
            yield (rec, at.trials, at.skip) if rec.uid == at.uid else (rec, None, 0)


def _gone(rec: ExperimentRecord) -> bool:
    """Whether reading ``rec`` whole failed because it was deleted since its head was read."""
    return isinstance(rec, ExperimentHead) and not rec.loaded


def walk_trials(store: Store, recs: Iterable[ExperimentRecord], at: Position | None,
                items_of: Callable[[ExperimentRecord, TrialRecord], list[Item]], chunk: int = _CHUNK,
                keep: Callable[[TrialRecord], bool] | None = None, budget: Budget | None = None) -> Iterator[Entry]:
    """Each item ``items_of`` makes of each trial of ``recs`` (after ``at``), one at a
    time (the trials of experiments of few read for several at once:
    ``ExperimentHead.first_trials``); only of the trials ``keep`` keeps, if given (it sees
    the trial alone, so an experiment none of whose trials it keeps is never read whole,
    unless read ahead with one it keeps trials of). With a ``budget``, an
    experiment counts against it before its first trial is made items of (``items_of``
    reads it whole, with those after it the page will likely read: ``Budget.admits``), and
    the walk ends there when it may not be read (a stop entry)."""
    answered = 0
    for rec, trials, skip in resume(recs, at):
        counted, gone = budget is None, False
        while not gone:
            first = rec.first_trials(chunk) if trials is None and isinstance(rec, ExperimentHead) else None
            rows, after = (first, None) if first is not None else trial_page(store, rec, chunk, trials)
            for row, t in enumerate(rows):
                if keep is not None and not keep(t):
                    skip = 0
                    continue
                if not counted:
                    assert budget is not None
                    if not budget.admits(rec, answered):
                        yield Spot(rec, trials, row, skip), 0, None
                        return
                    counted = True
                try:
                    items = items_of(rec, t)
                except NotFoundError:
                    if not _gone(rec):
                        raise
                    gone = True  # deleted meanwhile: passed over, as between two pages
                    break
                for n, item in enumerate(items):
                    if n >= skip:
                        answered += 1
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


@dataclass(frozen=True)
class _Embedding:
    """An object made of a whole experiment, built once it is on the page (:func:`built`
    reads the page's experiments whole as it reaches them, several at once)."""

    rec: ExperimentRecord
    build: Callable[[ExperimentRecord], Item]

    def __call__(self) -> Item | None:
        try:
            return self.build(self.rec)
        except NotFoundError:
            if _gone(self.rec):
                return None  # deleted since the page was walked: left out
            raise


def walk_embedding(recs: Iterable[ExperimentRecord], at: Position | None, most: int,
                   build: Callable[[ExperimentRecord], Item], budget: Budget | None = None) -> Iterator[Entry]:
    """Objects, one per experiment of ``recs`` (after ``at``), that embed the experiment's
    most recent trials, at most ``most`` (:func:`recent_trials`): each weighs the trials it
    embeds (counted in the database, as its chunk of heads is weighed), so :func:`fill`
    with a budget of ``most`` makes a page that embeds at most that many in all (or one
    object's); each is built, and its experiment read whole, only once it is on the page
    (:func:`built`). With a ``budget``, the walk ends (a stop entry) at the experiment the
    page may not read."""
    for rec, _, _ in resume(recs, at):
        if budget is not None and not budget.admits(rec):
            yield Spot(rec), 0, None
            return
        trials = rec.trial_count() if isinstance(rec, ExperimentHead) else rec.status.trials or 0
        yield Spot(rec), min(trials, most), _Embedding(rec, build)


def fill(entries: Iterator[Entry], limit: int, budget: int | None = None) -> tuple[list[Build], Spot | None]:
    """At most ``limit`` entries, and of at most ``budget`` weight together (though never
    none: a page holds its first entry whatever it weighs), ending at a stop entry, with
    the spot of the first entry left out: None when none is (the list ends on this page)."""
    items: list[Build] = []
    spent = 0
    for spot, weight, build in entries:
        if build is None or len(items) >= limit or (budget is not None and items and spent + weight > budget):
            return items, spot
        items.append(build)
        spent += weight
    return items, None


def built(items: list[Build]) -> list[Item]:
    """The items of a page, built (those of an experiment deleted meanwhile left out); the
    experiments the page's objects are made of read whole as they are reached, several at
    once (at most a MiB a read, or one)."""
    out: list[Item] = []
    for at, build in enumerate(items):
        if isinstance(build, _Embedding) and isinstance(build.rec, ExperimentHead) and not build.rec.loaded:
            ExperimentHead.read(_batch([i.rec for i in items[at:] if isinstance(i, _Embedding)]))
        item = build()
        if item is not None:
            out.append(item)
    return out


def _batch(recs: list[ExperimentRecord]) -> list[ExperimentHead]:
    """The first heads of ``recs`` not read yet that weigh at most ``_READ_BYTES`` together
    (the first whatever it weighs)."""
    batch: list[ExperimentHead] = []
    read = 0
    for rec in recs:
        if isinstance(rec, ExperimentHead) and not rec.loaded:
            if batch and read + rec.weight() > _READ_BYTES:
                break
            batch.append(rec)
            read += rec.weight()
    return batch


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
    if isinstance(rec, ExperimentHead) and total <= most:
        first = rec.first_trials(most)  # all of them, read with those of the experiments after it
        if first is not None:
            return first
    return store.list_trials(rec.id, limit=most, offset=max(0, total - most))


__all__ = ["CONTINUE", "LIMIT", "Budget", "Entry", "Position", "Spot", "built", "chunk_for", "encode", "fill", "heads", "kube_list",
           "next_token", "page_size", "recent_trials", "resume", "start", "walk_embedding", "walk_one", "walk_trials"]
