"""Issue 19: small inputs that used to exhaust the server, against a real `katib server`
process. Each is refused or served within its limit, /healthz keeps answering quickly
throughout, and the server's peak memory stays bounded."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from katib.store import Store
from tests.api_tests.test_summary import _seed

LAUGHS = "\n".join(
    ["a: &a [" + ",".join(['"lol"'] * 9) + "]"]
    + [f"{chr(98 + i)}: &{chr(98 + i)} [" + ",".join([f"*{chr(97 + i)}"] * 9) + "]" for i in range(8)]
) + "\n"
PEAK_RSS_MB = 300  # the server's own peak with every attack below (about 100 MB measured)
# The slowest /healthz probe while the attacks run. An attack that got through would hold the
# server for seconds (the aliases expanded, a 300 MB log read whole); on CI's 2 busy cores
# the scheduler alone has delayed a probe by 170 ms, so 100 ms failed a server that held.
HEALTHZ_MS = 500


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


PROBE = """
import sys, time, httpx
times = []
with httpx.Client(base_url=sys.argv[1], timeout=5) as c:
    while not sys.stdin.closed:
        t0 = time.perf_counter()
        r = c.get("/healthz")
        times.append((time.perf_counter() - t0) * 1000)
        print(f"{times[-1]:.1f} {r.status_code}", flush=True)
        time.sleep(0.02)
"""


class Healthz:
    """Asks /healthz every 20 ms from a process of its own (so the test's own threads,
    which send the attacks, cannot slow the probe) and keeps every answer's time."""

    def __init__(self, url: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", PROBE, url], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.times: list[float] = []
        self.errors: list[str] = []
        self.first = self.proc.stdout.readline() if self.proc.stdout else ""  # probing has begun

    def finish(self) -> None:
        self.proc.terminate()
        out, self.stderr = self.proc.communicate(timeout=30)
        for line in (self.first + out).splitlines():
            ms, code = line.split()
            self.times.append(float(ms))
            if code != "200":
                self.errors.append(code)


@pytest.fixture
def server(tmp_path):
    db = tmp_path / "katib.db"
    store = Store(str(db))
    rec = _seed(store, n=4)
    trial = store.list_trials(rec.id)[0]
    log = tmp_path / "runs" / rec.namespace / rec.name / trial.name / "trial.log"
    log.parent.mkdir(parents=True)
    with log.open("wb") as f:  # 300 MB of numbered lines
        block = b"".join(b"step %08d loss=0.5\n" % i for i in range(50_000))
        for _ in range(300 * 2**20 // len(block)):
            f.write(block)
    port = _free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "katib", "server", "--db", str(db), "--port", str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=tmp_path)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail("katib server did not start: " + proc.stderr.read().decode()[-2000:])
    yield proc, url, rec, trial
    proc.terminate()
    proc.wait(30)
    log.unlink()


def test_small_inputs_cannot_exhaust_the_server(server):
    proc, url, rec, trial = server
    base = f"/api/v1/namespaces/{rec.namespace}"
    health = Healthz(url)
    with httpx.Client(base_url=url, timeout=60) as c:
        # billion laughs: refused at once, not expanded
        t0 = time.monotonic()
        r = c.post(base + "/experiments", content=LAUGHS, headers={"content-type": "application/yaml"})
        assert r.status_code == 422 and "aliases expand to more than" in r.json()["message"], r.text
        assert time.monotonic() - t0 < 5
        # half a million values in under 1 MiB of YAML (17 s of CPU and 390 MB to load):
        # counted from the parse events and refused
        t0 = time.monotonic()
        r = c.post(base + "/experiments", content=b"[" + b",".join([b"1"] * 500_000) + b"]",
                   headers={"content-type": "application/yaml"})
        assert r.status_code == 422 and "holds more than 100000 values" in r.json()["message"], r.text
        assert time.monotonic() - t0 < 5
        # a 10 MB body: refused by its size, with the limit named
        r = c.post(base + "/experiments", content=b"a: " + b"x" * (10 * 2**20), headers={"content-type": "application/yaml"})
        assert r.status_code == 413 and "--max-body" in r.json()["message"]

        # the same body sent chunked (no Content-Length) is cut off at the limit as well
        def chunks():
            for _ in range(10):
                yield b"x" * 2**20

        r = c.post(base + "/experiments", content=chunks(), headers={"content-type": "application/yaml"})
        assert r.status_code == 413
        # a million parallel trials: refused by validation, nothing is built
        r = c.patch(f"{base}/experiments/{rec.name}/budget",
                    json={"maxTrialCount": 10_000_000, "parallelTrialCount": 1_000_000})
        assert r.status_code == 422 and "spec.parallelTrialCount" in r.json()["message"], r.text
        # six tails of a 300 MB log at once: each reads from the end
        results: list[httpx.Response] = []

        def tail() -> None:
            with httpx.Client(base_url=url, timeout=60) as own:
                results.append(own.get(f"{base}/trials/{trial.name}/log", params={"tail": 5}))
                results.append(own.get(f"/api/v1/namespaces/{rec.namespace}/pods/{trial.name}/log",
                                       params={"tailLines": 3}))

        threads = [threading.Thread(target=tail) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(results) == 12
        for r in results:
            assert r.status_code == 200 and r.text.endswith("loss=0.5\n") and r.text.count("\n") in (3, 5), r.text[:200]
        # the whole log is cut to the server's log limit (its end), not read into memory
        r = c.get(f"{base}/trials/{trial.name}/log")
        assert r.status_code == 200 and 0 < len(r.content) <= 1 << 20
    time.sleep(0.3)
    health.finish()
    assert not health.errors and len(health.times) > 10, health.stderr[-2000:]
    slowest = max(health.times)
    assert slowest < HEALTHZ_MS, f"/healthz took {slowest:.0f} ms (over {len(health.times)} probes: {[round(x) for x in health.times]})"
    peak = _peak_rss_mb(proc.pid)
    assert peak < PEAK_RSS_MB, f"the server peaked at {peak:.0f} MB"
    print(f"\n/healthz: {len(health.times)} probes, slowest {slowest:.1f} ms; server peak RSS {peak:.0f} MB")
