"""Users, their API tokens and their roles per namespace, in the experiments' database.

A token is shown once, when it is made, and stored as its SHA-256 only. Each has an id
(shown by :meth:`UserStore.list_tokens`, used to revoke it) and may have an expiry. The
server looks every request's token up here, so revoking a token, letting it expire or
removing its user shuts it out on the very next request.

>>> from katib.store import Store
>>> users = UserStore(Store("sqlite://"))
>>> token = users.add_user("ann")
>>> users.grant("ann", "team-a", "editor")
>>> users.authenticate(token).can("team-a", "viewer")
True
>>> users.revoke_token("ann", users.list_tokens("ann")[0].id)
>>> users.authenticate(token) is None
True
"""

from __future__ import annotations

import hashlib
import math
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from katib import names
from katib.errors import ConflictError, FieldError, NotFoundError, TemporaryError, ValidationError

from ._schema import grants, tokens, users

if TYPE_CHECKING:
    from ._store import Store

ROLES = ("viewer", "editor", "owner")

# A token's last use is written at most this often (seconds): one write a minute per token,
# not one per request.
LAST_USED_RESOLUTION = 60.0


@dataclass
class User:
    id: int
    name: str
    admin: bool
    roles: dict[str, str]  # namespace -> role

    def can(self, namespace: str, role: str) -> bool:
        """Whether the user holds ``role`` (or a stronger one) in ``namespace``."""
        if self.admin:
            return True
        held = self.roles.get(namespace)
        return held is not None and ROLES.index(held) >= ROLES.index(role)


@dataclass(frozen=True)
class TokenInfo:
    """What may be shown about a token: never the token itself.

    ``last_used_at`` is accurate to :data:`LAST_USED_RESOLUTION` seconds; None if never used.
    """

    id: int
    created_at: float
    expires_at: float | None
    last_used_at: float | None

    def expired(self, now: float | None = None) -> bool:
        return self.expires_at is not None and self.expires_at <= (time.time() if now is None else now)


def hash_token(token: str) -> str:
    """Tokens are random and long, so one SHA-256 is as good as a slow hash here."""
    return hashlib.sha256(token.encode()).hexdigest()


class UserStore:
    """Users, hashed tokens and per-namespace roles, in the same database."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # -- users -------------------------------------------------------------------------

    def add_user(self, name: str, admin: bool = False) -> str:
        """Create the user; returns their first token (shown once, stored hashed, no expiry)."""
        names.check("user", name)

        def insert(conn: Connection) -> None:
            conn.execute(users.insert().values(name=name, admin=admin, created_at=time.time()))

        try:
            self.store._retry(insert)
        except IntegrityError:
            raise ConflictError(f"user {name!r} already exists") from None
        return self.new_token(name)

    def remove_user(self, name: str) -> None:
        """Delete the user with all their tokens and grants (their experiments stay)."""

        def delete(conn: Connection) -> None:
            uid = self._user_id(conn, name)
            conn.execute(tokens.delete().where(tokens.c.user_id == uid))
            conn.execute(grants.delete().where(grants.c.user_id == uid))
            conn.execute(users.delete().where(users.c.id == uid))

        self.store._retry(delete)

    def list_users(self) -> list[User]:
        with self.store._read() as conn:
            out = []
            for row in conn.execute(sa.select(users).order_by(users.c.name)):
                out.append(User(id=row.id, name=row.name, admin=bool(row.admin), roles=self._roles(conn, row.id)))
        return out

    @staticmethod
    def _user_id(conn: Connection, name: str) -> int:
        row = conn.execute(sa.select(users.c.id).where(users.c.name == name)).first()
        if row is None:
            raise NotFoundError(f"user {name!r} not found")
        return int(row.id)

    @staticmethod
    def _roles(conn: Connection, uid: int) -> dict[str, str]:
        return {g.namespace: g.role for g in conn.execute(sa.select(grants).where(grants.c.user_id == uid))}

    # -- roles -------------------------------------------------------------------------

    def grant(self, name: str, namespace: str, role: str) -> None:
        """Give the user ``role`` in ``namespace``, replacing the one they had there."""
        names.check("namespace", namespace)
        if role not in ROLES:
            raise ValidationError([FieldError("role", f"must be one of {', '.join(ROLES)} (got {role!r})")], "grant")

        def upsert(conn: Connection) -> None:
            uid = self._user_id(conn, name)
            conn.execute(grants.delete().where(grants.c.user_id == uid, grants.c.namespace == namespace))
            conn.execute(grants.insert().values(user_id=uid, namespace=namespace, role=role))

        self.store._retry(upsert)

    def ungrant(self, name: str, namespace: str) -> None:
        """Take the user's role in ``namespace`` away; ``NotFoundError`` if they had none."""

        def delete(conn: Connection) -> None:
            uid = self._user_id(conn, name)
            if not conn.execute(grants.delete().where(grants.c.user_id == uid, grants.c.namespace == namespace)).rowcount:
                raise NotFoundError(f"user {name!r} has no role in namespace {namespace!r}")

        self.store._retry(delete)

    # -- tokens ------------------------------------------------------------------------

    def new_token(self, name: str, expires_in: float | None = None) -> str:
        """A new token for the user, valid for ``expires_in`` seconds (None: until revoked).
        Shown once: only its hash is stored."""
        return self.issue_token(name, expires_in)[0]

    def issue_token(self, name: str, expires_in: float | None = None) -> tuple[str, TokenInfo]:
        """:meth:`new_token`, with what :meth:`list_tokens` will show about it."""
        if expires_in is not None and not (math.isfinite(expires_in) and expires_in > 0):
            raise ValidationError([FieldError("expires", f"must be a positive number of seconds (got {expires_in!r})")],
                                  "token")
        token = "katib_" + secrets.token_urlsafe(32)
        now = time.time()
        expires_at = None if expires_in is None else now + expires_in

        def insert(conn: Connection) -> int:
            result = conn.execute(tokens.insert().values(user_id=self._user_id(conn, name), token_hash=hash_token(token),
                                                         created_at=now, expires_at=expires_at))
            return int(result.inserted_primary_key[0])  # type: ignore[index]

        token_id = self.store._retry(insert)
        return token, TokenInfo(id=token_id, created_at=now, expires_at=expires_at, last_used_at=None)

    def list_tokens(self, name: str) -> list[TokenInfo]:
        """The user's tokens, oldest first, expired ones included (until revoked)."""
        with self.store._read() as conn:
            uid = self._user_id(conn, name)
            rows = conn.execute(sa.select(tokens.c.id, tokens.c.created_at, tokens.c.expires_at, tokens.c.last_used_at)
                                .where(tokens.c.user_id == uid).order_by(tokens.c.id)).all()
        return [TokenInfo(id=r.id, created_at=r.created_at, expires_at=r.expires_at, last_used_at=r.last_used_at)
                for r in rows]

    def revoke_token(self, name: str, token_id: int) -> None:
        """Delete one of the user's tokens; the next request that carries it gets a 401."""

        def delete(conn: Connection) -> None:
            uid = self._user_id(conn, name)
            if not conn.execute(tokens.delete().where(tokens.c.id == token_id, tokens.c.user_id == uid)).rowcount:
                raise NotFoundError(f"user {name!r} has no token {token_id}")

        self.store._retry(delete)

    def authenticate(self, token: str) -> User | None:
        """The token's user, or None if the token is unknown, revoked or expired."""
        now = time.time()
        with self.store._read() as conn:
            row = conn.execute(
                sa.select(users.c.id, users.c.name, users.c.admin, tokens.c.id.label("token_id"), tokens.c.last_used_at)
                .join(tokens, tokens.c.user_id == users.c.id)
                .where(tokens.c.token_hash == hash_token(token))
                .where(sa.or_(tokens.c.expires_at.is_(None), tokens.c.expires_at > now))
            ).first()
            if row is None:
                return None
            roles = self._roles(conn, row.id)
        if row.last_used_at is None or now - row.last_used_at >= LAST_USED_RESOLUTION:
            self._touch(row.token_id, now)
        return User(id=row.id, name=row.name, admin=bool(row.admin), roles=roles)

    def _touch(self, token_id: int, now: float) -> None:
        """Record a use; best effort, since a busy database must not fail the request."""
        try:
            self.store._retry(lambda c: c.execute(tokens.update().where(tokens.c.id == token_id).values(last_used_at=now)),
                              attempts=1)
        except TemporaryError:
            pass
