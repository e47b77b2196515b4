"""An open event stream answers to its caller as they are now, not as they were when it
opened (security review 5): a role taken away, a token revoked or expired, a user removed
take effect on the stream's next event or keep-alive, not when the client hangs up."""

from __future__ import annotations

import json
import socket
import threading
import time
import types

import pytest

from api import _auth
from api.routes import experiments as experiment_routes
from katib.store import UserStore
from tests.api_tests.conftest import LiveServer
from tests.conftest import experiment, python_command


class Stream:
    """``GET /api/v1/events…`` read on a raw socket, in a thread: its status, its events,
    its keep-alives, and whether the server ended it."""

    def __init__(self, server: LiveServer, query: str, token: str) -> None:
        port = int(server.url.rsplit(":", 1)[1])
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.sock.sendall(f"GET /api/v1/events{query} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
                          "Connection: close\r\n\r\n".encode())
        self.lines = self.sock.makefile("rb")
        self.status = int(self.lines.readline().split()[1])
        self.events: list[dict] = []
        self.keepalives = 0
        self.ended = threading.Event()
        if self.status != 200:
            self.ended.set()
            return
        while self.lines.readline().strip() != b": connected":  # headers, a chunk's size: subscribed
            pass
        self.sock.settimeout(None)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            for line in self.lines:  # chunk sizes between the lines are no data
                if line.startswith(b"data: "):
                    self.events.append(json.loads(line[6:]))
                elif line.startswith(b": keep-alive"):
                    self.keepalives += 1
                elif line.strip() == b"0":  # the last chunk: the server ended the answer
                    break
        except (OSError, ValueError):
            pass
        finally:
            self.ended.set()

    def experiments(self) -> set[str]:
        return {e["experiment"] for e in self.events}

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def wait(condition, timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_a_role_taken_away_stops_an_open_stream(sqlite_store, tmp_path, monkeypatch):
    """The review's repro: eda, viewer of ns-b, opens ns-b's stream; her role is taken
    away; an experiment then runs in ns-b. Before, her GET was 403 but the open stream
    went on delivering its events (keep-alives held it open for ever)."""
    monkeypatch.setattr(_auth, "RECHECK_SECONDS", 0.0, raising=False)  # no second's grace: the next event sees it
    users = UserStore(sqlite_store)
    admin_token = users.add_user("admin", admin=True)
    eda = users.add_user("eda")
    users.grant("eda", "ns-a", "viewer")
    users.grant("eda", "ns-b", "viewer")
    with LiveServer(sqlite_store, tmp_path, auth=True) as server:
        server.client.headers["authorization"] = f"Bearer {admin_token}"
        one, every = Stream(server, "?namespace=ns-b", eda), Stream(server, "", eda)
        try:
            assert (one.status, every.status) == (200, 200)
            users.ungrant("eda", "ns-b")
            gone = server.client.get("/api/v1/namespaces/ns-b/experiments/secret-b",
                                     headers={"authorization": f"Bearer {eda}"})
            assert gone.status_code == 403
            for ns, name in (("ns-b", "secret-b"), ("ns-a", "open-a")):
                doc = experiment(name=name, command=python_command("print('loss=1')"), maxTrialCount=1, parallelTrialCount=1)
                assert server.client.post(f"/api/v1/namespaces/{ns}/experiments", json=doc).status_code == 201
            server.wait_for("ns-b", "secret-b")
            server.wait_for("ns-a", "open-a")
            # The stream of every namespace still works: ns-a's events, to the end.
            assert wait(lambda: any(e["type"] == "ended" and e["experiment"] == "open-a" for e in every.events)), every.events
            assert "secret-b" not in every.experiments()
            assert {e["namespace"] for e in every.events} == {"ns-a"}
            # ns-b's stream delivered nothing after the role went, and the server ended it.
            assert "secret-b" not in one.experiments(), one.events
            assert one.ended.wait(10), "the open stream of ns-b outlived its reader's role"
            assert not every.ended.is_set()
            again = Stream(server, "?namespace=ns-b", eda)  # a new one is refused, as her GET is
            assert again.status == 403
        finally:
            one.close()
            every.close()


@pytest.mark.parametrize("how", ["revoked", "expired", "removed"])
def test_a_token_that_stops_working_ends_an_idle_stream_at_its_next_keep_alive(sqlite_store, tmp_path, monkeypatch, how):
    """docs/security.md used to leave this gap open: "an event stream already open stays
    open until it closes". A stream with nothing to send now ends at its next keep-alive
    (15 s; here 0.2 s) after its token is revoked or expires or its user is removed; a
    stream whose token still works goes on."""
    from katib.store import _users

    monkeypatch.setattr(experiment_routes, "KEEP_ALIVE_SECONDS", 0.2, raising=False)
    now = [time.time()]
    monkeypatch.setattr(_users, "time", types.SimpleNamespace(time=lambda: now[0]))
    users = UserStore(sqlite_store)
    kept = users.add_user("ann")
    users.grant("ann", "ns-a", "viewer")
    users.add_user("bob")
    users.grant("bob", "ns-a", "viewer")
    bobs, info = users.issue_token("bob")
    if how == "expired":
        bobs = users.new_token("bob", expires_in=3600)
    with LiveServer(sqlite_store, tmp_path, auth=True) as server:
        staying, leaving = Stream(server, "?namespace=ns-a", kept), Stream(server, "", bobs)
        try:
            assert (staying.status, leaving.status) == (200, 200)
            assert wait(lambda: leaving.keepalives >= 1, 20)  # it is alive, and keeps alive (15 s before the fix)
            if how == "revoked":
                users.revoke_token("bob", info.id)
            elif how == "expired":
                now[0] += 3600
            else:
                users.remove_user("bob")
            assert leaving.ended.wait(10), f"a stream outlived its {how} token"
            seen = staying.keepalives
            assert wait(lambda: staying.keepalives > seen + 2, 10) and not staying.ended.is_set()
        finally:
            staying.close()
            leaving.close()
