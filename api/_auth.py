"""Multi-tenancy in small: bearer tokens, roles per namespace (viewer < editor < owner).

With authentication off every request may do everything (and the server listens on
loopback only). With it on, each request carries ``Authorization: Bearer <token>``;
reading needs ``viewer`` in the namespace, creating, editing, stopping, resuming and
deleting need ``editor``; admins may do everything everywhere.

A trial's push token (``katib._pushtoken``) is no user's: it is taken on its own trial's
push endpoint and refused everywhere else.
"""

from __future__ import annotations

import asyncio
import time

from fastapi import Request

from katib._pushtoken import PushTokens
from katib.errors import ForbiddenError, UnauthorizedError
from katib.store import User

from ._state import get_state

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
PUSH_ROUTE = "/api/v1/namespaces/{namespace}/trials/{trial}/metrics"
RECHECK_SECONDS = 1.0  # how stale an open stream's view of its caller may be


def current_user(request: Request) -> User | None:
    """The caller (None when authentication is off)."""
    state = get_state(request)
    if state.users is None:
        return None
    cached = getattr(request.state, "user", None)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise UnauthorizedError("authentication required: send Authorization: Bearer <token> (katib user token NAME)")
    if PushTokens.looks_like(token.strip()):
        raise UnauthorizedError("a trial's push token only pushes that trial's metrics")
    user = state.users.authenticate(token.strip())
    if user is None:
        raise UnauthorizedError("invalid token")
    request.state.user = user
    return user


def authorize(request: Request) -> None:
    """Router dependency: the caller may act on the namespace in the path (or, with a
    push token, push the metrics of the trial in the path)."""
    if _pushes_own_metrics(request):
        return
    user = current_user(request)
    namespace = request.path_params.get("namespace")
    if user is None or namespace is None:
        return
    role = "viewer" if request.method in READ_METHODS else "editor"
    if role == "viewer" and _is_public(request):
        return
    if not user.can(namespace, role):
        action = "read" if role == "viewer" else "change"
        raise ForbiddenError(f"user {user.name!r} may not {action} anything in namespace {namespace!r} (needs the {role} role)")


def _is_public(request: Request) -> bool:
    """Trainer's public control-plane ConfigMap, which every user may read (as on a cluster)."""
    from ._configmaps import PUBLIC

    params = request.path_params
    return (params.get("namespace"), params.get("configmap")) == PUBLIC


def _pushes_own_metrics(request: Request) -> bool:
    """A push token on its own trial's push endpoint; another trial's is refused here."""
    state = get_state(request)
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    if state.users is None or scheme.lower() != "bearer" or not PushTokens.looks_like(token):
        return False
    route = request.scope.get("route")
    if request.method != "POST" or getattr(route, "path", None) != PUSH_ROUTE:
        return False  # current_user refuses it
    namespace, trial = request.path_params.get("namespace", ""), request.path_params.get("trial", "")
    if state.push_tokens is None or not state.push_tokens.valid(token, namespace, trial):
        raise ForbiddenError(f"this push token is not trial {namespace}/{trial}'s: a trial pushes its own metrics only")
    return True


def stream_client(request: Request, user: User | None) -> str:
    """Whose open streams a stream counts among: the user's, or (without --auth) the
    client address's."""
    return f"user:{user.name}" if user is not None else f"addr:{request.client.host if request.client else '-'}"


def can_read(user: User | None, namespace: str) -> bool:
    return user is None or user.can(namespace, "viewer")


class StreamCaller:
    """The caller of a long-lived answer (the event stream), looked up again while it
    lasts: its token and roles are those of now, at most ``RECHECK_SECONDS`` old, not
    those of when it opened. A token revoked or expired, a user removed or a role taken
    away while a stream is open takes effect on the stream's next event or keep-alive.

    ``user`` is the caller as last looked up (None when authentication is off), for a
    cheap filter in the publisher's thread; ``fresh()`` looks it up again when due and
    answers whether the token still stands."""

    def __init__(self, request: Request) -> None:
        self._users = get_state(request).users
        self.user = current_user(request)
        self._token = request.headers.get("authorization", "").partition(" ")[2].strip()
        self._checked = time.monotonic()

    async def fresh(self, now: bool = False) -> bool:
        """False once the token no longer authenticates (revoked, expired, its user
        removed) or cannot be checked (a busy database: the stream ends, the client
        reconnects); ``self.user`` is at most ``RECHECK_SECONDS`` old after it, or just
        looked up with ``now``."""
        if self._users is None:
            return True
        if now or time.monotonic() - self._checked >= RECHECK_SECONDS:
            try:
                user = await asyncio.to_thread(self._users.authenticate, self._token)
            except Exception:  # the database's error or ours: unchecked is not allowed
                return False
            self._checked = time.monotonic()
            if user is None:
                return False
            self.user = user
        return True

    def may_read(self, namespace: str) -> bool:
        return can_read(self.user, namespace)
