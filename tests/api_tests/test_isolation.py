"""Multi-tenancy that holds below the API: an editor of one namespace runs trials; what
those trials can reach of the server, the store and the other namespaces.

The attacker holds an editor token for ``ns-a`` on a live ``katib server --auth`` with the
local executor in its sandbox, and submits trials (``python -c``) that try to get out.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from katib.store import Store, UserStore


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class CliServer:
    """``katib server`` as an operator starts it, in a process of its own."""

    def __init__(self, tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.db = tmp_path / "katib.db"
        self.argv = [sys.executable, "-m", "katib", "server", "--port", str(self.port), "--db", str(self.db),
                     "--workdir", str(tmp_path), "--tick", "0.05", *args]
        self.env = {**os.environ, **(env or {})}
        self.cwd = tmp_path
        self.proc: subprocess.Popen[str] | None = None

    def start(self, timeout: float = 60) -> CliServer:
        self.proc = subprocess.Popen(self.argv, env=self.env, cwd=self.cwd, text=True,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(self.url + "/healthz", timeout=5).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None:
                raise AssertionError(f"the server exited: {self.proc.stderr.read() if self.proc.stderr else ''}")
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.1)

    def refused(self, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run it expecting it not to start."""
        return subprocess.run(self.argv, env=self.env, cwd=self.cwd, text=True, capture_output=True, timeout=timeout)

    def stop(self) -> str:
        assert self.proc is not None
        self.proc.terminate()
        try:
            _, stderr = self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, stderr = self.proc.communicate()
        return stderr


def _no_bwrap_path(tmp_path: Path) -> str:
    """A PATH with what a server needs but bubblewrap."""
    folder = tmp_path / "bin-without-bwrap"
    folder.mkdir(exist_ok=True)
    for tool in ("env", "prlimit"):
        for d in ("/usr/bin", "/bin"):
            if Path(d, tool).exists() and not (folder / tool).exists():
                (folder / tool).symlink_to(Path(d, tool))
    return str(folder)


# -- the server refuses what it cannot fence in ---------------------------------------


def test_auth_with_ray_refuses_to_start_without_allow_unfenced_trials(tmp_path):
    result = CliServer(tmp_path, "--auth", "--executor", "ray").refused()
    assert result.returncode != 0
    assert "refusing to run trials under --auth" in result.stderr and "--allow-unfenced-trials" in result.stderr
    assert "Ray has no sandbox" in result.stderr and "Traceback" not in result.stderr


def test_auth_without_bubblewrap_refuses_then_starts_when_the_operator_allows_unfenced_trials(tmp_path):
    env = {"PATH": _no_bwrap_path(tmp_path)}
    result = CliServer(tmp_path, "--auth", env=env).refused()
    assert result.returncode != 0 and "bubblewrap" in result.stderr and "--allow-unfenced-trials" in result.stderr
    result = CliServer(tmp_path, "--auth", "--no-sandbox").refused()
    assert result.returncode != 0 and "--no-sandbox runs local trials unfenced" in result.stderr
    server = CliServer(tmp_path, "--auth", "--allow-unfenced-trials", env=env).start()
    stderr = server.stop()
    assert "warning" in stderr and "every editor of a namespace could run code as this server's user" in stderr


def test_without_auth_a_server_needs_no_sandbox(tmp_path):
    server = CliServer(tmp_path, env={"PATH": _no_bwrap_path(tmp_path)}).start()
    assert "warning" not in server.stop()


def test_allow_unfenced_trials_says_what_it_means():
    result = subprocess.run([sys.executable, "-m", "katib", "server", "--help"], capture_output=True, text=True,
                            env={**os.environ, "COLUMNS": "300"}, timeout=60)
    assert "--allow-unfenced-trials" in result.stdout
    assert "every editor may then run code as this server's user" in " ".join(result.stdout.split())


def _user(db: Path, name: str, namespace: str, role: str = "editor") -> str:
    store = Store(str(db))
    try:
        users = UserStore(store)
        token = users.add_user(name)
        users.grant(name, namespace, role)
        return token
    finally:
        store.close()


@pytest.mark.skipif(__import__("trials._sandbox", fromlist=["problem"]).problem() is not None,
                    reason="bubblewrap cannot make a sandbox on this machine")
def test_katib_server_auth_sandboxes_local_trials_by_default(tmp_path):
    from tests.conftest import experiment, python_command

    server = CliServer(tmp_path, "--auth")
    token = _user(server.db, "mallory", "ns-a")
    server.start()
    try:
        client = httpx.Client(base_url=server.url, headers={"authorization": f"Bearer {token}"}, timeout=30)
        code = (f"import os\ntry:\n    open({str(server.db)!r}, 'rb').read(); print('store read')\n"
                f"except OSError as exc:\n    print('store refused', exc.errno)\nprint('loss=1')")
        doc = experiment(name="peek", command=python_command(code), maxTrialCount=1, parallelTrialCount=1)
        assert client.post("/api/v1/namespaces/ns-a/experiments", json=doc).status_code == 201
        deadline = time.monotonic() + 60
        while client.get("/api/v1/namespaces/ns-a/experiments/peek/status").json()["phase"] != "Succeeded":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        trial = client.get("/api/v1/namespaces/ns-a/experiments/peek/trials").json()["items"][0]["metadata"]["name"]
        log = client.get(f"/api/v1/namespaces/ns-a/trials/{trial}/log").text
        assert "store refused" in log and "store read" not in log, log
    finally:
        server.stop()
