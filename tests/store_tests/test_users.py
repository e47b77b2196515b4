"""Users, tokens and grants in the store: names checked, tokens listed, expired, revoked."""

from __future__ import annotations

import time
import types

import pytest
import sqlalchemy as sa

from katib.errors import NotFoundError, ValidationError
from katib.store import Store, UserStore, _users, hash_token


class Clock:
    """Stands in for the ``time`` module inside ``katib.store._users``."""

    def __init__(self) -> None:
        self.now = time.time()

    def time(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    fake = Clock()
    monkeypatch.setattr(_users, "time", types.SimpleNamespace(time=fake.time))
    return fake


def test_names_follow_the_shared_rule(store):
    users = UserStore(store)
    with pytest.raises(ValidationError) as err:
        users.add_user("Ann Smith")
    assert [e.path for e in err.value.errors] == ["user"]
    with pytest.raises(ValidationError) as err:
        users.add_user("")
    assert [e.path for e in err.value.errors] == ["user"]
    users.add_user("ann")
    for bad in ("../etc", "Team-A", "a" * 64):
        with pytest.raises(ValidationError) as err:
            users.grant("ann", bad, "viewer")
        assert {e.path for e in err.value.errors} == {"namespace"}, bad
    assert users.list_users()[0].roles == {}


def test_tokens_are_listed_without_their_secret_and_revoked_by_id(store, clock):
    users = UserStore(store)
    first = users.add_user("ann")
    second, info = users.issue_token("ann", expires_in=3600)
    users.add_user("bob")
    listed = users.list_tokens("ann")
    assert [t.id for t in listed] == [listed[0].id, info.id]
    assert listed[0].expires_at is None and listed[1].expires_at == pytest.approx(clock.now + 3600)
    assert all(t.last_used_at is None for t in listed)
    assert first not in repr(listed) and second not in repr(listed)

    assert users.authenticate(first).name == "ann"
    assert users.list_tokens("ann")[0].last_used_at == clock.now

    with pytest.raises(NotFoundError, match="user 'bob' has no token"):
        users.revoke_token("bob", info.id)  # one user cannot revoke another's token
    users.revoke_token("ann", info.id)
    assert users.authenticate(second) is None
    assert users.authenticate(first) is not None
    assert [t.id for t in users.list_tokens("ann")] == [listed[0].id]
    with pytest.raises(NotFoundError):
        users.revoke_token("ann", info.id)
    with pytest.raises(NotFoundError, match="user 'zed' not found"):
        users.list_tokens("zed")


def test_expired_tokens_are_refused_but_still_listed(store, clock):
    users = UserStore(store)
    users.add_user("ann")
    token, info = users.issue_token("ann", expires_in=60)
    assert users.authenticate(token) is not None
    clock.now += 59
    assert users.authenticate(token) is not None
    clock.now += 1
    assert users.authenticate(token) is None
    listed = users.list_tokens("ann")[-1]
    assert listed.id == info.id and listed.expired(clock.now)
    for bad in (0, -5, float("inf"), float("nan")):
        with pytest.raises(ValidationError, match="expires: must be a positive number of seconds"):
            users.new_token("ann", expires_in=bad)


def test_last_use_is_written_at_most_once_a_minute(store, clock):
    users = UserStore(store)
    token = users.add_user("ann")
    users.authenticate(token)
    first = clock.now
    clock.now += 30
    users.authenticate(token)
    assert users.list_tokens("ann")[0].last_used_at == first
    clock.now += 30
    users.authenticate(token)
    assert users.list_tokens("ann")[0].last_used_at == clock.now


def test_removing_a_user_takes_their_tokens_and_grants(store):
    users = UserStore(store)
    token = users.add_user("ann")
    users.new_token("ann")
    users.grant("ann", "team-a", "owner")
    keep = users.add_user("bob")
    users.grant("bob", "team-a", "viewer")
    users.remove_user("ann")
    assert users.authenticate(token) is None
    assert [u.name for u in users.list_users()] == ["bob"]
    with store._read() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM tokens")).scalar() == 1
        assert conn.execute(sa.text("SELECT count(*) FROM grants")).scalar() == 1
    assert users.authenticate(keep).roles == {"team-a": "viewer"}
    with pytest.raises(NotFoundError, match="user 'ann' not found"):
        users.remove_user("ann")
    again = users.add_user("ann")  # the name is free again, with nothing of the old user
    assert users.authenticate(again).roles == {}


def test_ungrant(store):
    users = UserStore(store)
    token = users.add_user("ann")
    users.grant("ann", "team-a", "editor")
    users.grant("ann", "team-b", "viewer")
    users.ungrant("ann", "team-a")
    assert users.authenticate(token).roles == {"team-b": "viewer"}
    with pytest.raises(NotFoundError, match="user 'ann' has no role in namespace 'team-a'"):
        users.ungrant("ann", "team-a")


def test_tokens_made_before_expiry_existed_keep_working(tmp_path):
    """A database at revision 0004 is upgraded; its tokens stay valid, with no expiry."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        Store._alembic_upgrade(conn, "0004")
        conn.execute(sa.text("INSERT INTO users (id, name, admin, created_at) VALUES (1, 'ann', false, 0)"))
        conn.execute(sa.text("INSERT INTO tokens (user_id, token_hash, created_at) VALUES (1, :h, 0)"),
                     {"h": hash_token("katib_old")})
    engine.dispose()
    store = Store(url)
    users = UserStore(store)
    assert users.authenticate("katib_old").name == "ann"
    assert users.list_tokens("ann")[0].expires_at is None
    store.close()
