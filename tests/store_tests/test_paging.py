"""Trials paged by keyset (continue tokens, Kubernetes-style), and statuses that carry
counts but no list of every trial name once a state grows large."""

from __future__ import annotations

import base64
import json

import pytest

from katib.store import InvalidContinueToken, TrialRecord, _derived, iter_trials, trial_page


def _experiment(store, name="e", n=7):
    rec = store.create_experiment("ns", name, {}, {}, "/w")
    store.add_trials([TrialRecord(id=0, experiment_id=rec.id, name=f"{name}-{i}", state="Succeeded", assignments=[])
                      for i in range(n)])
    return rec


def _status(rec) -> dict:
    return rec.status.to_dict() if hasattr(rec.status, "to_dict") else rec.status  # typed, or Katib's JSON


def _names(rows):
    return [t.name for t in rows]


def test_pages_cover_every_trial_once_in_order(store):
    rec = _experiment(store)
    other = _experiment(store, "o", 3)  # interleaved ids of another experiment never show
    store.add_trials([TrialRecord(id=0, experiment_id=rec.id, name="e-7", state="Running", assignments=[])])
    seen, token, pages = [], None, 0
    while True:
        rows, token = trial_page(store, rec, 3, token)
        seen += _names(rows)
        pages += 1
        if token is None:
            break
    assert seen == [f"e-{i}" for i in range(8)] and pages == 3
    assert _names(iter_trials(store, other, page=2)) == ["o-0", "o-1", "o-2"]
    running, token = trial_page(store, rec, 10, states=["Running"])
    assert _names(running) == ["e-7"] and token is None


def test_a_token_is_stable_under_concurrent_inserts(store):
    """Trials added between two pages neither shift the next page nor repeat what was read:
    they come at the end (an offset would have repeated one trial for each insert before it)."""
    rec = _experiment(store, n=6)
    first, token = trial_page(store, rec, 3)
    store.add_trials([TrialRecord(id=0, experiment_id=rec.id, name=f"late-{i}", state="Created", assignments=[])
                      for i in range(2)])
    rest = list(first)
    while token is not None:
        rows, token = trial_page(store, rec, 3, token)
        rest += rows
    assert _names(rest) == [f"e-{i}" for i in range(6)] + ["late-0", "late-1"]


def _tampered(token: str) -> list[str]:
    head, _, check = token.partition(".")
    body = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    moved = base64.urlsafe_b64encode(json.dumps({**body, "a": 0}).encode()).decode().rstrip("=")
    return [moved + "." + check, token[:-3], "not a token", head, token.replace(".", "x"), "%%%." + check]


def test_a_tampered_or_foreign_token_is_refused_with_a_reason(store):
    rec, other = _experiment(store), _experiment(store, "o", 3)
    _, token = trial_page(store, rec, 2)
    assert token is not None
    for bad in _tampered(token):
        with pytest.raises(InvalidContinueToken, match="continue: not a token"):
            trial_page(store, rec, 2, bad)
    with pytest.raises(InvalidContinueToken, match="another experiment"):
        trial_page(store, other, 2, token)
    with pytest.raises(InvalidContinueToken, match="state filter"):
        trial_page(store, rec, 2, token, states=["Running"])


def test_a_large_state_is_counted_not_listed(store, monkeypatch):
    monkeypatch.setattr(_derived, "LIST_LIMIT", 3)
    rec = _experiment(store, n=5)
    small = _experiment(store, "s", 2)
    store.add_trials([TrialRecord(id=0, experiment_id=rec.id, name="e-run", state="Running", assignments=[])])
    status = _status(store.get_experiment("ns", "e"))
    assert status["trials"] == 6 and status["trialsSucceeded"] == 5 and status["trialsRunning"] == 1
    assert "succeededTrialList" not in status and status["runningTrialList"] == ["e-run"]
    by_name = {r.name: _status(r) for r in store.list_experiments("ns")}
    assert by_name["s"]["succeededTrialList"] == ["s-0", "s-1"] and "succeededTrialList" not in by_name["e"]
    assert small.name == "s"
