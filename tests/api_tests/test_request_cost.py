"""Requests whose cost used to grow without bound, or that a name rule let through (found
by a review, 2026-12-03): each now costs what its answer is worth, or is refused saying why."""

from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path

from tests.api_tests.conftest import count_experiment_reads
from tests.api_tests.test_summary import _seed
from tests.test_write_deadline import serving

SELECTOR_LIST = "/apis/kubeflow.org/v1beta1/namespaces/default/experiments"


def test_a_long_label_selector_is_refused_at_once_and_a_long_legal_one_parses_in_linear_time(live):
    started = time.monotonic()
    r = live.client.get(SELECTOR_LIST + "?labelSelector=a" + "," * 60_000 + "x")
    assert r.status_code == 422 and "labelSelector" in r.text and "at most 4096" in r.text
    # Just under the cap: a look-ahead regex re-read the rest at every comma (quadratic).
    from api._selectors import labels as _selector

    legal = ",".join(f"k{i}=v" for i in range(700)) + "," * 4
    parsed = _selector(legal[:4096])
    assert len(parsed) >= 600
    assert _selector("a=b, e in (f, g),c=d") == {"a": "b", "e": frozenset({"f", "g"}), "c": "d"}
    assert time.monotonic() - started < 5.0  # the quadratic split took 8 s for the first alone


def test_following_a_trials_log_reads_a_bounded_chunk_not_the_whole_file(sqlite_store, tmp_path: Path, monkeypatch):
    """…/log?since=0 on a 400 MB log read it whole into memory, then cut it to 1 MiB."""
    from trials._executor import Executor

    rec = _seed(sqlite_store, n=1, steps=1)
    (t,) = sqlite_store.list_trials(rec.id)
    folder = tmp_path / "runs" / rec.namespace / rec.name / t.name
    folder.mkdir(parents=True)
    (folder / "trial.log").write_bytes(b"x" * (3 << 20))
    reads: list[int] = []
    real_open = open

    class Counting:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def seek(self, n):
            return self.f.seek(n)

        def read(self, n=-1):
            data = self.f.read(n)
            reads.append(len(data))
            return data

    import builtins

    import trials._executor as executor_module

    monkeypatch.setattr(executor_module, "open", lambda p, mode="r": Counting(real_open(p, mode)), raising=False)
    assert builtins.open is real_open
    chunk, after = Executor.log_since({}, folder, 0, max_bytes=1 << 20)
    assert len(chunk) == 1 << 20 and after == 1 << 20 and reads == [1 << 20]


def test_a_log_offset_past_the_end_answers_nothing_new_not_a_500(live):
    """?since=10^17 (the route allows up to 2^62) seeked past what the file system holds:
    OSError, a 500."""
    rec = _seed(live.store, n=1, steps=1)
    (t,) = live.store.list_trials(rec.id)
    folder = live.app.state.katib.runs_root / rec.namespace / rec.name / t.name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "trial.log").write_bytes(b"epoch 1\n")
    url = f"/api/v1/namespaces/{rec.namespace}/trials/{t.name}/log"
    for since in (8, 10**17, 2**53 + 1, 2**62):
        r = live.client.get(url, params={"since": since})
        assert r.status_code == 200 and r.content == b"" and r.headers["X-Log-Offset"] == str(since), (since, r.status_code)
    r = live.client.get(url, params={"since": 6})
    assert r.content == b"1\n" and r.headers["X-Log-Offset"] == "8"


def test_a_cli_log_reads_a_log_longer_than_one_chunk_to_its_end(tmp_path: Path):
    import subprocess
    import sys

    from katib.store import Store

    store = Store(str(tmp_path / "k.db"))
    rec = _seed(store, n=1, steps=1)
    (t,) = store.list_trials(rec.id)
    store.close()
    folder = tmp_path / "runs" / rec.namespace / rec.name / t.name
    folder.mkdir(parents=True)
    body = b"".join(b"line %07d\n" % i for i in range(300_000))  # 3.6 MB: several chunks
    (folder / "trial.log").write_bytes(body)
    done = subprocess.run([sys.executable, "-m", "katib", "logs", t.name, "-n", rec.namespace, "--db",
                           str(tmp_path / "k.db")], capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout == body


def test_a_name_with_a_trailing_newline_is_refused(live):
    """The name rule's regex ended in "$", which also matches before a final newline."""
    from katib.names import name_errors

    assert name_errors("experiment", "nl\n") and name_errors("namespace", "default\n")
    doc = {"apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment",
           "metadata": {"name": "nl\n", "namespace": "default"}, "spec": {}}
    r = live.client.post("/api/v1/namespaces/default/experiments", json=doc)
    assert r.status_code == 422 and "metadata.name" in r.text
    r = live.client.post("/api/v1/namespaces/default%0A/experiments", json={**doc, "metadata": {"name": "ok"}})
    assert r.status_code in (400, 404, 422)


def test_metrics_label_values_are_escaped():
    from api.routes.system import _label

    assert _label('a"b\\c\nd') == 'a\\"b\\\\c\\nd'


def test_a_summary_since_that_is_not_finite_is_a_422_not_a_500(live):
    rec = _seed(live.store, n=2, steps=1)
    for since in ("nan", "inf", "-inf"):
        r = live.client.get(f"/api/v1/namespaces/{rec.namespace}/experiments/{rec.name}/summary", params={"since": since})
        assert r.status_code == 422 and "since" in r.text, (since, r.status_code, r.text[:200])


def test_a_connection_that_never_sends_its_request_or_body_is_let_go(sqlite_store, tmp_path: Path, monkeypatch):
    """uvicorn waits for a request's head, and a body, without end: idle sockets ran the
    server out of file descriptors, before any authentication."""
    import socket

    import api._guard
    import katib.cli._server as server_cli
    from api import create_app

    monkeypatch.setattr(server_cli, "HEADER_SECONDS", 0.5)
    monkeypatch.setattr(api._guard, "BODY_SECONDS", 0.5)
    app = create_app(sqlite_store, tmp_path / "runs", tmp_path, resume=False)

    def closed_within(sock: socket.socket, seconds: float) -> bytes:
        sock.settimeout(seconds)
        got = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return got
            got += chunk

    with serving(app, server_cli._timely_h11()) as port:
        for sent in (b"", b"GET /healthz HTTP/1.1\r\nHost: 127"):
            with socket.create_connection(("127.0.0.1", port)) as s:
                s.sendall(sent)
                started = time.monotonic()
                assert closed_within(s, 10) == b"" and time.monotonic() - started < 5
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(b"POST /api/v1/namespaces/default/experiments HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"a\"")
            answer = closed_within(s, 10)
            assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        with socket.create_connection(("127.0.0.1", port)) as s:  # a request in time is answered
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            assert closed_within(s, 10).startswith(b"HTTP/1.1 200")


@contextmanager
def capped_server(store, tmp_path: Path, max_connections: int):
    """The API on uvicorn with katib's h11 protocol capped at ``max_connections``; its port."""
    from api import create_app
    from katib._httpguard import timely_h11

    app = create_app(store, tmp_path / "runs", tmp_path, resume=False)
    with serving(app, timely_h11(60.0, max_connections=max_connections)) as port:
        yield port


def test_idle_connections_past_the_cap_push_each_other_out_not_the_server(sqlite_store, tmp_path: Path):
    """30,000 idle sockets, with no login, took every file descriptor the server had (its
    store's and its trials' with them) for as long as they were reopened. Past the cap the
    connection that has waited longest for a request head is closed, so a client that
    sends its request at once is served, and the server keeps descriptors of its own."""
    import socket
    import subprocess
    import sys

    idle: list[socket.socket] = []
    with capped_server(sqlite_store, tmp_path, 20) as port:
        for _ in range(60):  # three times the cap, none sending anything
            idle.append(socket.create_connection(("127.0.0.1", port)))
            time.sleep(0.005)
        time.sleep(0.5)
        for s in idle:
            s.settimeout(0.05)
        closed = []
        for i, s in enumerate(idle):
            try:
                closed.append(i) if s.recv(1) == b"" else None
            except TimeoutError:
                pass
        assert len(closed) >= 40 and closed[:40] == list(range(40)), closed  # the oldest went first
        with socket.create_connection(("127.0.0.1", port)) as s:  # a request sent at once is served
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            s.settimeout(10)
            assert s.recv(100).startswith(b"HTTP/1.1 200")
    for s in idle:
        s.close()
    # The cap comes from the descriptor limit, which is left as it is (trials inherit it).
    code = ("import resource; soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE); "
            "resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard)); from katib._httpguard import connection_cap; "
            "print(connection_cap(), resource.getrlimit(resource.RLIMIT_NOFILE)[0])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["768", "1024"], out.stdout + out.stderr


def test_websocket_upgrades_are_counted_out_of_the_connection_cap(sqlite_store, tmp_path: Path):
    """uvicorn hands an upgraded socket to its WebSocket protocol and the HTTP protocol never
    hears of it again: each upgrade (refused by the app) stayed counted, and after the cap's
    worth every new connection was closed at once, until a restart."""
    import socket

    upgrade = (b"GET /api/v1/experiments HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    with capped_server(sqlite_store, tmp_path, 5) as port:
        for _ in range(12):
            with socket.create_connection(("127.0.0.1", port)) as s:
                s.sendall(upgrade)
                s.settimeout(10)
                assert s.recv(100).startswith(b"HTTP/1.1 403"), "the app refuses a WebSocket"
        time.sleep(0.3)
        for _ in range(3):  # still served, one after another
            with socket.create_connection(("127.0.0.1", port)) as s:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                s.settimeout(10)
                assert s.recv(100).startswith(b"HTTP/1.1 200")


def test_a_volume_claim_lookup_reads_only_splits_that_name_an_algorithm(live, monkeypatch):
    """…/persistentvolumeclaims/{name} tried every dash of the name as the experiment's end:
    a 253-character name of dashes was 126 reads of stored experiments (1 MB specs each)."""
    reads = count_experiment_reads(monkeypatch, live.store)
    name = "a-" * 120 + "random"
    r = live.client.get(f"/api/v1/namespaces/default/persistentvolumeclaims/{name}")
    assert r.status_code == 404 and reads == ["a-" * 119 + "a"], reads[:5]
