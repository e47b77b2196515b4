"""What the katib serve tests share (tests/test_serve.py, tests/test_serve_guard.py): a
served model's server process, started once it answers ready and stopped as Ctrl-C stops
it; the ``served`` fixture (tests/conftest.py) is the random example's, started once."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.conftest import REPO

MAX_BODY = 65536  # the served example's --max-body: the requests of the tests are a few KiB


@dataclass
class Served:
    url: str
    db: Path
    folder: Path
    trial: str


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def katib_cli(*args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "katib", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=timeout)


@contextlib.contextmanager
def server(command: list[str], url: str, log_path: Path, cwd: Path,
           env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """A server process, once it answers ready; stopped as Ctrl-C or SIGTERM stops it."""
    import httpx

    log = open(log_path, "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=cwd, env=env)
    try:
        deadline = time.monotonic() + 180  # importing kserve takes seconds on a busy machine
        while True:
            assert proc.poll() is None, log_path.read_text()
            try:
                if httpx.get(f"{url}/v2/health/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.5)
        yield proc
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, log_path.read_text()  # Ctrl-C or SIGTERM ends it cleanly
    finally:
        proc.kill()
        proc.wait()
        log.close()


@contextlib.contextmanager
def serving(folder: Path, name: str, tmp: Path, setup: str = "", path: Path | None = None) -> Iterator[str]:
    """``katib.serve.serve`` of the model in ``folder`` as ``name``, in a Python of its own
    that runs ``setup`` first (with ``path`` on its ``sys.path``); the server's URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-c", f"{setup}\nimport sys; from pathlib import Path; from katib.serve import serve; "
               f"serve(Path(sys.argv[1]), {name!r}, port={port})", str(folder)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(path or tmp), os.environ.get("PYTHONPATH", "")])}
    with server(command, url, tmp / f"{name}.log", tmp, env):
        yield url


@contextlib.contextmanager
def serve_example(tmp: Path, example_run: Any) -> Iterator[Served]:
    """``katib serve random --max-body MAX_BODY``: the random example's best trial, of the
    examples test's own run when it ran first."""
    run, db = example_run(REPO / "examples" / "random.yaml")
    assert run.returncode == 0, run.stdout + run.stderr
    from katib.names import RunLayout
    from katib.store import Store

    store = Store(str(db))
    trial = store.get_experiment("kubeflow", "random").status.to_dict()["currentOptimalTrial"]["bestTrialName"]
    store.close()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "katib", "serve", "random", "-n", "kubeflow", "--db", str(db), "--port", str(port),
               "--max-body", str(MAX_BODY)]
    with server(command, url, tmp / "serve.log", tmp):
        yield Served(url, db, RunLayout(db.parent / "runs").artifacts("kubeflow", "random", trial), trial)


def digits(count: int = 12) -> Any:
    """The last ``count`` of scikit-learn's digits, as raw pixels (the saved pipeline scales them)."""
    import numpy as np
    from sklearn.datasets import load_digits

    x, _ = load_digits(return_X_y=True)
    return x[-count:].astype(np.float32)


def one_digit() -> dict[str, Any]:
    """An inference request for one digit."""
    return {"inputs": [{"name": "input-0", "shape": [1, 64], "datatype": "FP32", "data": digits(1).ravel().tolist()}]}
