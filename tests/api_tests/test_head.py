"""HEAD on anything readable: the GET's status and headers, no body."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import httpx

from katib.store import UserStore
from tests.api_tests.conftest import LiveServer
from tests.conftest import experiment

BASE = "/api/v1/namespaces/default"


def raw_head(url: str, path: str) -> bytes:
    """Everything the server sends for a HEAD, read until it closes the connection."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(f"HEAD {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


async def asgi_head(app: Any, path: str) -> tuple[int, bytes]:
    """A HEAD straight into the ASGI application: its status and every body byte it sends."""
    scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
             "method": "HEAD", "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
             "root_path": "", "headers": [(b"host", b"127.0.0.1")], "client": ("127.0.0.1", 1),
             "server": ("127.0.0.1", 80)}
    done, requested, status, body = asyncio.Event(), False, 0, b""

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status, body
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            body += message.get("body", b"")
            if not message.get("more_body"):
                done.set()

    await app(scope, receive, send)
    return status, body


def test_head_answers_as_get_without_a_body(live):
    assert live.client.post(f"{BASE}/experiments", json=experiment(maxTrialCount=1, parallelTrialCount=1)).status_code == 201
    live.wait_for("default", "demo")
    trial = live.client.get(f"{BASE}/experiments/demo/trials").json()["items"][0]["metadata"]["name"]
    paths = ["/healthz", f"{BASE}/experiments/demo", f"{BASE}/experiments/demo/trials", f"{BASE}/trials/{trial}/log",
             f"/api/v1/namespaces/default/pods/{trial}/log", "/apis/kubeflow.org/v1beta1/namespaces/default/experiments",
             f"{BASE}/experiments/missing", f"{BASE}/trials/missing/log", "/ui/"]
    for path in paths:
        get, head = live.client.get(path), live.client.head(path)
        assert head.status_code == get.status_code != 405, (path, head.status_code, get.status_code)
        assert head.headers["content-type"] == get.headers["content-type"], path
        if "content-length" in get.headers:
            assert head.headers["content-length"] == get.headers["content-length"], path
        answer = raw_head(live.url, path)
        assert answer.startswith(f"HTTP/1.1 {get.status_code} ".encode()) and answer.endswith(b"\r\n\r\n"), (path, answer)

    # The application itself sends no body, whatever server it runs under (uvicorn, and
    # httpx's and Starlette's test transports, would drop one).
    for path in paths:
        status, body = asyncio.run(asgi_head(live.app, path))
        assert status == live.client.get(path).status_code and body == b"", (path, status, body[:80])

    # An endless stream ends once its headers are sent; the connection is free again.
    r = live.client.head("/api/v1/events", timeout=10)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    assert live.client.head("/healthz").status_code == 200


def test_head_needs_the_same_token_as_get(sqlite_store, tmp_path):
    token = UserStore(sqlite_store).add_user("ann")
    with LiveServer(sqlite_store, tmp_path, auth=True) as server:
        assert server.client.head("/api/v1/experiments").status_code == 401
        r = server.client.head("/api/v1/experiments", headers={"authorization": f"Bearer {token}"})
        assert r.status_code == 200
        assert httpx.head(server.url + f"{BASE}/experiments/demo", headers={"authorization": f"Bearer {token}"}).status_code == 403
