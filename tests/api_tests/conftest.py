"""A real server on loopback (uvicorn in a thread) and an HTTP client for it."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest
import uvicorn

from api import create_app


class LiveServer:
    def __init__(self, store, tmp_path: Path, tick: float = 0.05, auth: bool = False, **options) -> None:
        self.store = store
        self.app = create_app(store, tmp_path / "runs", tmp_path, tick=tick, auth=auth, **options)
        config = uvicorn.Config(self.app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the server did not start")
            time.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self.client = httpx.Client(base_url=self.url, timeout=60)
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.close()
        self.server.should_exit = True
        self.thread.join(30)

    def wait_for(self, namespace: str, name: str, phase: str = "Succeeded", timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = self.client.get(f"/api/v1/namespaces/{namespace}/experiments/{name}/status")
            if r.status_code == 200 and r.json()["phase"] == phase and not r.json()["running"]:
                return r.json()
            time.sleep(0.05)
        raise AssertionError(f"{namespace}/{name} did not reach {phase}: {r.text}")


@pytest.fixture
def live(sqlite_store, tmp_path):
    with LiveServer(sqlite_store, tmp_path) as server:
        yield server


def count_experiment_reads(monkeypatch: pytest.MonkeyPatch, store) -> list[str]:
    """The names the store's ``get_experiment`` is asked for from now on, in order."""
    reads: list[str] = []
    real = store.get_experiment

    def counting(namespace: str, name: str):
        reads.append(name)
        return real(namespace, name)

    monkeypatch.setattr(store, "get_experiment", counting)
    return reads
