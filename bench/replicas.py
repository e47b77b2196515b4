"""Several `katib server`s on one PostgreSQL database: E concurrent experiments of T parallel
trivial trials each, on 2 and on 3 servers; once a third of the trials have ended, the server
holding the most experiments is killed with SIGKILL. Prints, per server count: throughput
(trials/s, first submission to last end), failover (kill to every experiment of the killed
server held by a live one), and what was lost (trials short of the budget, or not
Succeeded), duplicated (trials beyond the budget), started twice (each trial's command
appends a line to a file of its own) and launched again (a trial whose launch was cut short,
its command never started, goes again as attempt 2, as after a kill -9).

    python bench/replicas.py --db postgresql://postgres@127.0.0.1:5432/postgres \\
        [--experiments 100] [--trials 10] [--replicas 2 3] [--lease 5] [--sleep 1]

--db names a server whose user may create databases: each run gets a fresh one.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from katib.store import Leases, Store  # noqa: E402

TRIAL = 'echo start >> "{markers}/$KATIB_TRIAL_NAME"; sleep {sleep}; echo "loss=${{trialParameters.x}}"'


def experiment(name: str, trials: int, markers: Path, sleep: float) -> dict[str, Any]:
    return {
        "apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment", "metadata": {"name": name},
        "spec": {
            "objective": {"type": "minimize", "objectiveMetricName": "loss"},
            "algorithm": {"algorithmName": "random"},
            "parallelTrialCount": trials, "maxTrialCount": trials, "maxFailedTrialCount": 0,
            "parameters": [{"name": "x", "parameterType": "double", "feasibleSpace": {"min": "0", "max": "1"}}],
            "trialTemplate": {
                "primaryContainerName": "main", "trialParameters": [{"name": "x", "reference": "x"}],
                "trialSpec": {"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {"spec": {
                    "restartPolicy": "Never", "containers": [{"name": "main", "image": "sh", "command": [
                        "sh", "-c", TRIAL.format(markers=markers, sleep=sleep)]}]}}}},
            },
        },
    }


def fresh_database(url: str) -> str:
    import sqlalchemy as sa

    name = "bench_" + uuid.uuid4().hex[:10]
    admin = sa.create_engine("postgresql+psycopg://" + url.split("://", 1)[1], isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return url.rsplit("/", 1)[0] + "/" + name


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def call(port: int, method: str, path: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return r.read()


def wait(predicate: Any, timeout: float, what: str, every: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(every)
    raise SystemExit(f"{what}: not within {timeout:g} s")


def run(args: argparse.Namespace, replicas: int) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="katib-replicas-"))
    markers = workdir / "markers"
    markers.mkdir()
    db = fresh_database(args.db)
    env = {**os.environ, "KATIB_HOME": str(workdir / "home")}
    procs: dict[int, subprocess.Popen[bytes]] = {}
    try:
        for i in range(replicas):
            port = free_port()
            log = (workdir / f"server-{i}.log").open("wb")
            procs[port] = subprocess.Popen(
                [sys.executable, "-m", "katib", "server", "--db", db, "--port", str(port), "--tick", str(args.tick),
                 "--lease-seconds", str(args.lease)], stdout=log, stderr=subprocess.STDOUT, env=env, cwd=workdir)
            wait(lambda port=port: _healthy(port), 60, "a server answers")
        store = Store(db)
        leases = Leases(store, args.lease)
        ports = list(procs)
        total = args.experiments * args.trials
        start = time.perf_counter()
        with ThreadPoolExecutor(8) as pool:  # submitted at once, to every server in turn
            list(pool.map(lambda i: call(ports[i % replicas], "POST", "/api/v1/namespaces/default/experiments",
                                         experiment(f"e{i}", args.trials, markers, args.sleep)),
                          range(args.experiments)))

        wait(lambda: _ended(store) >= total // 3, args.timeout, "a third of the trials end", every=0.5)
        held = {r.id: r.leases for r in leases.replicas() if r.live}
        victim_id = max(held, key=lambda r: held[r])
        victim = next(p for p in ports if procs[p].pid == int(victim_id.rsplit(":", 2)[1]))
        orphans = {n for (_, n), o in leases.holders().items() if o == victim_id}
        procs[victim].send_signal(signal.SIGKILL)
        killed = time.perf_counter()
        procs[victim].wait()

        def adopted() -> bool:
            holders = leases.holders()
            return all(holders.get(("default", n)) not in (None, victim_id) or _done(store, n) for n in orphans)

        wait(adopted, args.timeout, "the killed server's experiments are adopted", every=0.05)
        failover = time.perf_counter() - killed
        wait(lambda: _ended(store) >= total, args.timeout, "every trial ends", every=0.2)
        wait(lambda: all(_done(store, f"e{i}") for i in range(args.experiments)), args.timeout,
             "every experiment ends", every=0.2)
        wall = time.perf_counter() - start
        succeeded = rerun = 0
        for rec in store.list_experiments():
            trials = store.list_trials(rec.id)
            succeeded += sum(t.state == "Succeeded" for t in trials)
            rerun += sum(t.attempt > 0 for t in trials)
        starts = [len(p.read_text().splitlines()) for p in markers.iterdir()]
        names = [t.name for rec in store.list_experiments() for t in store.list_trials(rec.id)]
        store.close()
        return {"replicas": replicas, "experiments": args.experiments, "trials": total, "wall": wall,
                "throughput": total / wall, "held": len(orphans), "failover": failover,
                "lost": total - succeeded, "duplicated": len(names) - len(set(names)) + max(0, len(names) - total),
                "twice": sum(n - 1 for n in starts if n > 1), "rerun": rerun}
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
            proc.wait()


def _healthy(port: int) -> bool:
    try:
        return call(port, "GET", "/healthz") == b"ok"
    except OSError:
        return False


def _ended(store: Store) -> int:
    """Trials that ended, in one query (reading every status would load the database)."""
    import sqlalchemy as sa

    with store._read() as conn:
        return int(conn.execute(sa.text("SELECT count(*) FROM trials WHERE state IN ('Succeeded', 'Failed')")).scalar()
                   or 0)


def _done(store: Store, name: str) -> bool:
    status = store.get_experiment("default", name).status
    return bool(status.get("completionTime") if isinstance(status, dict) else status.completion_time)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", default=os.environ.get("KATIB_TEST_POSTGRES_URL"),
                        help="a PostgreSQL URL whose user may create databases ($KATIB_TEST_POSTGRES_URL)")
    parser.add_argument("--experiments", type=int, default=100)
    parser.add_argument("--trials", type=int, default=10, help="trials per experiment, all in parallel")
    parser.add_argument("--replicas", type=int, nargs="+", default=[2, 3])
    parser.add_argument("--lease", type=float, default=5.0, help="the servers' --lease-seconds")
    parser.add_argument("--tick", type=float, default=0.5, help="the servers' --tick")
    parser.add_argument("--sleep", type=float, default=1.0, help="seconds each trial runs")
    parser.add_argument("--timeout", type=float, default=900.0)
    args = parser.parse_args()
    if not args.db:
        raise SystemExit("--db: a PostgreSQL URL is needed (or set KATIB_TEST_POSTGRES_URL)")
    rows = [run(args, n) for n in args.replicas]
    print(f"{args.experiments} experiments x {args.trials} parallel trials (sleep {args.sleep:g} s), "
          f"lease {args.lease:g} s, tick {args.tick:g} s; {os.cpu_count()} CPUs")
    print("| servers | trials | wall s | trials/s | experiments on the killed server | failover s "
          "| lost | duplicated | started twice | launched again |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['replicas']} | {r['trials']} | {r['wall']:.1f} | {r['throughput']:.1f} | {r['held']} "
              f"| {r['failover']:.1f} | {r['lost']} | {r['duplicated']} | {r['twice']} | {r['rerun']} |")


if __name__ == "__main__":
    main()
