"""What katib's two HTTP servers (``katib server``, whose guard is ``api._guard``, and
``katib serve``, ``katib.serve._Guard``) check alike: which host names are loopback,
whose ``Origin`` a request carries, and how long a request's head and body may take.

Nothing heavy is imported here (uvicorn only once ``timely_h11`` is called): ``katib serve``
builds its guard without loading the API server's app, its controller and its store.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncio

__all__ = ["BODY_SECONDS", "HEADER_SECONDS", "LOOPBACK_NAMES", "foreign_origin", "is_loopback", "split_host",
           "timely_h11"]

LOOPBACK_NAMES = frozenset({"localhost", "localhost.", "ip6-localhost"})
HEADER_SECONDS = 30.0  # the most a request's head may take to arrive, from the connection or the last answer
BODY_SECONDS = 120.0  # the most a request's body may take to arrive, whole


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address, IPv6 with or without brackets) is loopback."""
    host = host.strip().lower()
    if host in LOOPBACK_NAMES or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def split_host(value: str) -> str:
    """``example.org:8080`` → ``example.org``; ``[::1]:80`` → ``::1``."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:].split("]", 1)[0]
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def foreign_origin(origin: str | None, host: str) -> bool:
    """Whether a request carries an ``Origin`` that is not the server's own: ``http://`` or
    ``https://`` and the ``Host`` the request was sent to (another port is another origin)."""
    return origin is not None and origin.rstrip("/").lower() not in {f"http://{host.lower()}", f"https://{host.lower()}"}


def timely_h11(head_seconds: float) -> type:
    """uvicorn's h11 protocol, less a way to hold a connection forever: a request's head
    must have come ``head_seconds`` after the connection was made or the last answer was
    sent, or the connection is closed (uvicorn waits for it without end, so idle sockets
    that never send a request ran the server out of file descriptors). A request's body
    has its own deadline (``BODY_SECONDS``), which each server's guard keeps."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class TimelyH11(H11Protocol):  # type: ignore[misc]
        _head_due: asyncio.TimerHandle | None = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._expect_head(self.cycle)

        def on_response_complete(self) -> None:
            answered = self.cycle  # before uvicorn starts a pipelined request, which is not late
            super().on_response_complete()
            self._expect_head(answered)

        def connection_lost(self, exc: Exception | None) -> None:
            if self._head_due is not None:
                self._head_due.cancel()
            super().connection_lost(exc)

        def _expect_head(self, waiting_on: Any) -> None:
            if self._head_due is not None:
                self._head_due.cancel()

            def late() -> None:
                if self.cycle is waiting_on and not self.transport.is_closing():  # no new request began
                    self.transport.close()

            self._head_due = self.loop.call_later(head_seconds, late)

    return TimelyH11
