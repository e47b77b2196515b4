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

__all__ = ["BODY_SECONDS", "WRITE_SECONDS", "FD_RESERVE", "HEADER_SECONDS", "LOOPBACK_NAMES", "MAX_CONNECTIONS", "connection_cap",
           "foreign_origin", "is_loopback", "split_host", "timely_h11"]

LOOPBACK_NAMES = frozenset({"localhost", "localhost.", "ip6-localhost"})
HEADER_SECONDS = 30.0  # the most a request's head may take to arrive, from the connection or the last answer
BODY_SECONDS = 120.0  # the most a request's body may take to arrive, whole
WRITE_SECONDS = 120.0  # the most an answer's writing may stand still, its client reading none of it
FD_RESERVE = 256  # file descriptors an HTTP server keeps from its connections (its store, logs, launches)
MAX_CONNECTIONS = 10_000  # and the most connections it holds, whatever its descriptor limit


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


def connection_cap() -> int:
    """How many HTTP connections a server holds at once: its file-descriptor limit less a
    quarter of it (at most ``FD_RESERVE``) kept for the store, trial logs and launches, and
    at most ``MAX_CONNECTIONS``. The limit is not raised: trials inherit it."""
    try:
        import resource
    except ImportError:  # not POSIX
        return MAX_CONNECTIONS // 10
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft == resource.RLIM_INFINITY:
        return MAX_CONNECTIONS
    return max(64, min(MAX_CONNECTIONS, soft - min(FD_RESERVE, soft // 4)))


def _let_go(transport: Any) -> None:
    """Close a connection; one whose last answer is still unread is dropped with it
    (``close()`` would wait for the client to read it)."""
    if transport.get_write_buffer_size():
        transport.abort()
    else:
        transport.close()


def timely_h11(head_seconds: float, max_connections: int | None = None, write_seconds: float | None = None) -> type:
    """uvicorn's h11 protocol, less a way to hold a connection forever: a request's head
    must have come ``head_seconds`` after the connection was made or the last answer was
    sent, or the connection is closed (uvicorn waits for it without end, so idle sockets
    that never send a request ran the server out of file descriptors). A request's body
    has its own deadline (``BODY_SECONDS``), which each server's guard keeps. An answer the
    client stops reading (the transport's buffer full, writing paused) for ``write_seconds``
    (``WRITE_SECONDS`` when None) drops the connection and what was left to send: a client
    that never read held its connection and a 50 MB answer in the server's memory forever.

    At most ``max_connections`` are open at once (``connection_cap()`` when None): one past
    it closes the connection that has waited longest for a request head, or, when every
    one is busy with a request, the new one. Idle sockets opened faster than the deadline
    lets them go (30,000 of them, with no login, took every descriptor the server had, and
    its store's and trials' with them) push each other out, not the server's own work,
    and a client that sends its request at once is served."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    cap = connection_cap() if max_connections is None else max_connections
    write_due = WRITE_SECONDS if write_seconds is None else write_seconds
    # Open connections in the order they began waiting for a head; a busy one is skipped.
    waiting: dict[Any, None] = {}
    count = [0]

    class TimelyH11(H11Protocol):  # type: ignore[misc]
        _head_due: asyncio.TimerHandle | None = None
        _write_due: asyncio.TimerHandle | None = None
        _waiting_on: Any = None
        _counted = False

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            count[0] += 1
            self._counted = True
            self._expect_head(self.cycle)
            if count[0] > cap:
                self._make_room()

        def on_response_complete(self) -> None:
            answered = self.cycle  # before uvicorn starts a pipelined request, which is not late
            super().on_response_complete()
            self._expect_head(answered)
            if self.transport.get_write_buffer_size() and self._write_due is None:
                # An answer's tail below the buffer's high-water mark never pauses writing, and
                # a close (Connection: close) waits for it to be read: dropped if still unsent.
                def unsent() -> None:
                    self._write_due = None
                    if self.transport.get_write_buffer_size() and (self.transport.is_closing() or self.cycle is answered):
                        self.transport.abort()

                self._write_due = self.loop.call_later(write_due, unsent)

        def handle_websocket_upgrade(self, event: Any) -> None:
            # uvicorn hands the socket to a WebSocket protocol: this one never hears of it
            # again (no connection_lost), so it is counted out here; the WebSocket
            # protocol has its own timeouts (katib serves no WebSocket: the app refuses it)
            self._forget()
            super().handle_websocket_upgrade(event)

        def pause_writing(self) -> None:  # the client is not reading what it was sent
            super().pause_writing()
            if self._write_due is None:
                self._write_due = self.loop.call_later(write_due, self.transport.abort)

        def resume_writing(self) -> None:
            super().resume_writing()
            if self._write_due is not None:
                self._write_due.cancel()
                self._write_due = None

        def _forget(self) -> None:
            if self._head_due is not None:
                self._head_due.cancel()
            if self._write_due is not None:
                self._write_due.cancel()
            waiting.pop(self, None)
            if self._counted:
                count[0] -= 1
                self._counted = False

        def connection_lost(self, exc: Exception | None) -> None:
            self._forget()
            super().connection_lost(exc)

        def _idle(self) -> bool:
            return self.cycle is self._waiting_on and not self.transport.is_closing()

        def _make_room(self) -> None:
            while waiting:  # oldest first; a busy one leaves the queue until it waits again
                other = next(iter(waiting))
                del waiting[other]
                if other is self:  # every older one is busy with a request
                    break
                if other._idle():  # the longest wait for a head: let it go (unread answer and all)
                    _let_go(other.transport)
                    return
            self.transport.close()

        def _expect_head(self, waiting_on: Any) -> None:
            if self._head_due is not None:
                self._head_due.cancel()
            self._waiting_on = waiting_on
            waiting.pop(self, None)
            waiting[self] = None  # the newest waiter

            def late() -> None:
                if self._idle():  # no new request began
                    _let_go(self.transport)

            self._head_due = self.loop.call_later(head_seconds, late)

    return TimelyH11
