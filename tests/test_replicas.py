"""Three `katib server`s on one PostgreSQL database: experiments are shared out by lease;
kill -9 the server holding the most, and another adopts its experiments and their running
trials within 10 s, with no trial lost, duplicated or run twice; every server answers for
every experiment."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from katib.store import Leases, Store
from tests.conftest import POSTGRES_ENV, experiment

LEASE = 3.0
EXPERIMENTS = {"alpha": 10, "beta": 10, "gamma": 8}  # name -> maxTrialCount: 28 trials
# Each start of a trial's command adds a line to its own file: a trial run twice has two.
TRIAL = 'echo start >> "{markers}/$KATIB_TRIAL_NAME"; sleep 1.2; echo "loss=${{trialParameters.x}}"'


def _database() -> str:
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        if os.environ.get("CI"):
            pytest.fail(f"CI must provide a PostgreSQL server in {POSTGRES_ENV}")
        pytest.skip(f"several servers share a PostgreSQL database: set {POSTGRES_ENV}")
    from tests.conftest import _fresh_schema

    return _fresh_schema(url)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _call(port: int, method: str, path: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read() or b"null") if r.headers.get("content-type", "").startswith("application/json") \
            else r.read().decode()


def _wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"{what}: not within {timeout:g} s")


def _get(obj: Any, field: str, attr: str) -> Any:
    """A status or condition field, from a typed model or a plain dict."""
    return obj.get(field) if isinstance(obj, dict) else getattr(obj, attr)


class Servers:
    def __init__(self, tmp_path: Path, db: str) -> None:
        self.tmp, self.db = tmp_path, db
        self.env = {**os.environ, "KATIB_HOME": str(tmp_path / "home")}
        self.procs: dict[int, subprocess.Popen[bytes]] = {}  # port -> server

    def start(self) -> int:
        port = _free_port()
        log = (self.tmp / f"server-{port}.log").open("wb")
        self.procs[port] = subprocess.Popen(
            [sys.executable, "-m", "katib", "server", "--db", self.db, "--port", str(port), "--tick", "0.2",
             "--lease-seconds", str(LEASE)], stdout=log, stderr=subprocess.STDOUT, env=self.env, cwd=self.tmp)

        def up() -> bool:
            assert self.procs[port].poll() is None, self.logs()
            try:
                return _call(port, "GET", "/healthz") == "ok"
            except OSError:
                return False

        _wait(up, 30, "the server answers")
        return port

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(self.tmp.glob("server-*.log")))

    def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
            proc.wait()


@pytest.fixture
def servers(tmp_path: Path):
    s = Servers(tmp_path, _database())
    yield s
    s.close()


def test_three_servers_one_killed(servers: Servers, tmp_path: Path):
    markers = tmp_path / "markers"
    markers.mkdir()
    ports = [servers.start() for _ in range(3)]
    store = Store(servers.db)
    leases = Leases(store, LEASE)
    assert sum(r.live for r in leases.replicas()) == 3
    for port, (name, budget) in zip(ports, EXPERIMENTS.items(), strict=True):  # each sent to another server
        doc = experiment(name=name, command=["sh", "-c", TRIAL.format(markers=markers)], maxTrialCount=budget,
                         parallelTrialCount=3, maxFailedTrialCount=0)
        _call(port, "POST", "/api/v1/namespaces/default/experiments", doc)

    def owners() -> dict[str, str | None]:
        return {r.name: r.owner for r in store.list_experiments()}

    def running(name: str) -> int:
        return len(store.list_trials(store.get_experiment("default", name).id, states=["Running"]))

    # Shared out: each held by a live server, one each (the fewest first).
    _wait(lambda: len(set(owners().values()) - {None}) == 3, 10, "the experiments are shared out")
    by_pid = {servers.procs[p].pid: p for p in ports}
    here = [_call(p, "GET", "/metrics").split("\nkatib_controllers_running ")[1].split()[0] for p in ports]
    assert here == ["1", "1", "1"]  # each server counts its own controllers

    def port_of(owner: str | None) -> int:
        assert owner is not None
        return by_pid[int(owner.rsplit(":", 2)[1])]

    # A stop and a delete sent to servers that do not run the experiment take effect.
    doc = experiment(name="delta", command=["sh", "-c", "sleep 60 # ${trialParameters.x}"], maxTrialCount=2,
                     parallelTrialCount=2)
    _call(ports[0], "POST", "/api/v1/namespaces/default/experiments", doc)
    _wait(lambda: running("delta") == 2, 15, "delta runs")
    others = [p for p in ports if p != port_of(owners()["delta"])]
    assert _call(others[0], "POST", "/api/v1/namespaces/default/experiments/delta/stop") == {"running": False}
    assert owners()["delta"] is None
    assert _call(others[1], "DELETE", "/api/v1/namespaces/default/experiments/delta")
    assert "delta" not in owners()
    victim_id = owners()["alpha"]
    assert victim_id is not None
    _wait(lambda: running("alpha") == 3, 15, "alpha runs three trials")
    ran_before = {t.name for t in store.list_trials(store.get_experiment("default", "alpha").id, states=["Running"])}
    victim = port_of(victim_id)

    servers.procs[victim].send_signal(signal.SIGKILL)
    killed = time.monotonic()
    servers.procs[victim].wait()
    live = [p for p in ports if p != victim]
    _wait(lambda: owners()["alpha"] not in (None, victim_id), 10, "another server adopts alpha")
    adopted_in = time.monotonic() - killed
    assert owners()["alpha"] in {r.id for r in leases.replicas() if r.live}

    def finished() -> bool:
        return all(_get(r.status, "completionTime", "completion_time") for r in store.list_experiments())

    _wait(finished, 60, f"every experiment ends\n{servers.logs()}")
    for name, budget in EXPERIMENTS.items():
        rec = store.get_experiment("default", name)
        trials = store.list_trials(rec.id)
        assert [t.state for t in trials] == ["Succeeded"] * budget, (name, [(t.name, t.state, t.conditions) for t in trials])
        assert all(t.attempt == 0 for t in trials), f"{name}: a trial was run again"
        assert rec.owner is None
        for port in live:  # any server answers for any experiment
            obj = _call(port, "GET", f"/api/v1/namespaces/default/experiments/{name}")
            assert obj["status"]["trialsSucceeded"] == budget
    starts = {p.name: len(p.read_text().splitlines()) for p in markers.iterdir()}
    assert len(starts) == sum(EXPERIMENTS.values()) and set(starts.values()) == {1}, starts
    # The trials alpha ran when its server died ran on, followed by the adopter: once each.
    alpha = {t.name: t for t in store.list_trials(store.get_experiment("default", "alpha").id)}
    followed = [n for n in ran_before
                if any("followed on" in (_get(c, "message", "message") or "") for c in alpha[n].conditions)]
    assert followed, [alpha[n].conditions for n in ran_before]
    assert adopted_in < 10, adopted_in
    print(f"alpha adopted {adopted_in:.1f} s after its server was killed")
    store.close()


def test_edits_through_two_servers_at_once_all_stay(servers: Servers):
    """Each server makes its own edits of an experiment one at a time, but two servers on
    one database each read, merged and wrote back: a label patched through one server was
    lost when the other wrote the spec it had read before. Now a write lands only on the
    spec it was made from, and the patch is made again otherwise. Label patches and a
    budget edit sent to two servers at once: every one stays."""
    from concurrent.futures import ThreadPoolExecutor

    ports = [servers.start() for _ in range(2)]
    doc = experiment(name="shared", command=["sh", "-c", "sleep 60 # ${trialParameters.x}"], maxTrialCount=3,
                     parallelTrialCount=1)
    _call(ports[0], "POST", "/api/v1/namespaces/default/experiments", doc)
    kube = "/apis/kubeflow.org/v1beta1/namespaces/default/experiments/shared"

    def label(i: int) -> int:
        body = json.dumps({"metadata": {"labels": {f"l{i}": "x"}}}).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{ports[i % 2]}{kube}", data=body, method="PATCH",
                                     headers={"Content-Type": "application/merge-patch+json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            return int(r.status)

    with ThreadPoolExecutor(12) as pool:
        budget = pool.submit(_call, ports[1], "PATCH", "/api/v1/namespaces/default/experiments/shared/budget",
                             {"maxTrialCount": 5})
        codes = list(pool.map(label, range(24)))
        budget.result()
    assert codes == [200] * 24
    for port in ports:
        obj = _call(port, "GET", kube)
        assert sorted(obj["metadata"].get("labels") or {}) == sorted(f"l{i}" for i in range(24)), servers.logs()
        assert obj["spec"]["maxTrialCount"] == 5
    store = Store(servers.db)
    try:
        assert store.get_experiment("default", "shared").spec["spec"]["maxTrialCount"] == 5
    finally:
        store.close()


def test_a_budget_edited_beside_the_servers_reaches_the_one_that_runs_it(servers: Servers, tmp_path: Path):
    """``KatibClient(db=…)`` on the servers' database edits the budget of an experiment a
    server runs. It stored the edit and tried to run the experiment itself, which the
    server's hold refused: the server ran on under the old parallelism. It now asks that
    server, as another server would."""
    from katib import KatibClient

    go = tmp_path / "go"
    port = servers.start()
    doc = experiment(name="edited", command=["sh", "-c", f'while [ ! -e "{go}" ]; do sleep 0.1; done; '
                                                         'echo "loss=${trialParameters.x}"'],
                     maxTrialCount=4, parallelTrialCount=1, maxFailedTrialCount=0)
    _call(port, "POST", "/api/v1/namespaces/default/experiments", doc)
    store = Store(servers.db)
    client = KatibClient(db=servers.db, workdir=tmp_path)
    try:
        exp_id = store.get_experiment("default", "edited").id
        _wait(lambda: len(store.list_trials(exp_id, states=["Running"])) == 1, 20, "the server runs one trial")
        client.edit_experiment_budget("edited", parallel_trial_count=3)
        _wait(lambda: len(store.list_trials(exp_id, states=["Running"])) == 3, 20, f"the server runs three\n{servers.logs()}")
        go.touch()
        _wait(lambda: _get(store.get_experiment("default", "edited").status, "completionTime", "completion_time"),
              30, "the experiment ends")
        assert [t.state for t in store.list_trials(exp_id)] == ["Succeeded"] * 4
        assert all(t.attempt == 0 for t in store.list_trials(exp_id))
    finally:
        client.close()
        store.close()
