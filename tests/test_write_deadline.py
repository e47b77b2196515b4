"""The HTTP servers' write deadline (``katib._httpguard.timely_h11``): an answer its client
stops reading is dropped after ``write_seconds``, with the connection. A client that never
read held the connection, and the whole answer in the server's memory, for ever."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

uvicorn = pytest.importorskip("uvicorn")

BODY = b"x" * (16 << 20)
CHUNK = 256 << 10


@contextmanager
def serving(app, http) -> Iterator[int]:
    """``app`` on uvicorn with the protocol ``http``, on a free loopback port (yielded)."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="critical", http=http))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        yield server.servers[0].sockets[0].getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(30)


def slow_reader(port: int, request: bytes) -> socket.socket:
    """A client that sends ``request`` and reads nothing (a 4 KB receive buffer)."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    s.sendall(request)
    return s


def read_all(s: socket.socket, timeout: float) -> int:
    """How many bytes ``s`` gets before it is closed or reset."""
    s.settimeout(timeout)
    got = 0
    try:
        while chunk := s.recv(1 << 20):
            got += len(chunk)
    except (ConnectionResetError, TimeoutError):
        pass
    return got


def test_an_answer_its_client_does_not_read_is_dropped_after_the_write_deadline():
    from katib._httpguard import timely_h11

    answered = threading.Event()  # the app's last send returned: the server let the answer go

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(len(BODY)).encode())]})
        for i in range(0, len(BODY), CHUNK):  # each send waits while the transport's buffer is full
            await send({"type": "http.response.body", "body": BODY[i:i + CHUNK], "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        answered.set()

    with serving(app, timely_h11(60.0, write_seconds=0.5)) as port:
        with slow_reader(port, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n") as s:
            assert answered.wait(20), "the unread answer was held past the write deadline"
            assert read_all(s, 5) < len(BODY)  # dropped, not delivered
        with socket.create_connection(("127.0.0.1", port)) as s:  # a client that reads gets it all
            s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            assert read_all(s, 20) > len(BODY)


def test_an_unread_tail_that_never_paused_writing_is_dropped_too():
    """An answer whose unsent rest stays below the transport's high-water mark never pauses
    writing, and uvicorn's close after it (Connection: close) waited for the client to read
    it, for ever. (The mark is raised here past the whole answer, so only that path can
    drop it.)"""
    from katib._httpguard import timely_h11

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(len(BODY)).encode())]})
        await send({"type": "http.response.body", "body": BODY})

    base = timely_h11(60.0, write_seconds=0.5)

    class HighWater(base):  # type: ignore[misc, valid-type]
        def connection_made(self, transport):
            super().connection_made(transport)
            transport.set_write_buffer_limits(high=4 * len(BODY))

    with serving(app, HighWater) as port:
        with slow_reader(port, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n") as s:
            time.sleep(3)  # not reading, past the deadline
            assert read_all(s, 5) < len(BODY)  # dropped, not kept for a reader that never came
