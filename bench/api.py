"""API latency under load: listing 10,000 trials, and reading one experiment while
another experiment runs trials, through real HTTP on loopback.

    python bench/api.py [--trials 10000] [--list-requests 30] [--get-requests 500] [--clients 4]

Starts `katib server` (uvicorn) on a fresh SQLite store, seeds an experiment with
`--trials` finished trials (with observations), starts a second experiment that keeps
launching trivial trials, then times the requests from `--clients` concurrent clients.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def seed(db: str, n: int) -> None:
    from katib.controller import Controller, admit
    from katib.controller._status import mark_trial
    from katib.spec import Condition
    from katib.store import ObservationRow, Store, TrialRecord
    from tests.conftest import experiment

    store = Store(db)
    ctl = Controller(store, runs_root=Path(db).parent / "runs")
    rec, _ = ctl.submit(admit(experiment(name="big", maxTrialCount=n, parallelTrialCount=10)), Path(db).parent)
    now = time.time()
    for start in range(0, n, 1000):
        batch = []
        for i in range(start, min(n, start + 1000)):
            t = TrialRecord(id=0, experiment_id=rec.id, name=f"big-{i:08d}", state="Created",
                            assignments=[{"name": "x", "value": str(i / n)}],
                            labels={"katib.kubeflow.org/experiment": "big"}, created_at=now,
                            observation={"loss": {"min": str(i / n), "max": str(i / n), "latest": str(i / n)}},
                            objective=i / n, start_time=now, completion_time=now)
            mark_trial(t, "Created")
            mark_trial(t, "Succeeded")
            batch.append(t)
        store.write_trials(new=batch)
        store.write_trials(samples=[(t.id, ObservationRow(now + k, "loss", str(k))) for t in batch for k in range(3)])
    from katib.controller._status import experiment_status

    status = experiment_status(admit(experiment(name="big")), store.list_trials(rec.id), rec.status)
    status.conditions = [Condition(type="Succeeded", status="True", reason="ExperimentMaxTrialsReached")]
    store.update_experiment(rec.id, status=status)


def timed(client: httpx.Client, path: str) -> float:
    start = time.perf_counter()
    r = client.get(path)
    r.raise_for_status()
    return time.perf_counter() - start


def measure(url: str, path: str, requests: int, clients: int) -> tuple[float, float, float, int]:
    with ThreadPoolExecutor(clients) as pool:
        http = [httpx.Client(base_url=url, timeout=120) for _ in range(clients)]
        first = http[0].get(path)
        size = first.num_bytes_downloaded  # as sent: gzip when the answer is large
        start = time.perf_counter()
        latencies = list(pool.map(lambda i: timed(http[i % clients], path), range(requests)))
        wall = time.perf_counter() - start
        for c in http:
            c.close()
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return requests / wall, statistics.median(latencies) * 1000, p99 * 1000, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--list-requests", type=int, default=30)
    parser.add_argument("--get-requests", type=int, default=500)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--port", type=int, default=18931)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "katib.db")
        seed(db, args.trials)
        server = subprocess.Popen([sys.executable, "-m", "katib", "server", "--db", db, "--port", str(args.port),
                                   "--workdir", tmp], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{args.port}"
        try:
            for _ in range(300):
                try:
                    httpx.get(url + "/healthz", timeout=1)
                    break
                except httpx.HTTPError:
                    time.sleep(0.1)
            from tests.conftest import experiment

            running = experiment(name="busy", maxTrialCount=100_000, parallelTrialCount=2, maxFailedTrialCount=0)
            httpx.post(url + "/api/v1/namespaces/default/experiments", json=running, timeout=30).raise_for_status()
            time.sleep(2)
            rows = [
                (f"list {args.trials} trials", "/api/v1/namespaces/default/experiments/big/trials", args.list_requests),
                ("read one experiment", "/api/v1/namespaces/default/experiments/busy", args.get_requests),
                ("read one trial", "/api/v1/namespaces/default/trials/big-00000042", args.get_requests),
            ]
            results = [(label, *measure(url, path, n, args.clients)) for label, path, n in rows]
            trials_run = httpx.get(url + "/api/v1/namespaces/default/experiments/busy").json()["status"]["trials"]
        finally:
            server.terminate()
            server.wait(30)
    print(f"katib server on SQLite, {args.clients} concurrent clients, while experiment 'busy' ran {trials_run} trials\n")
    print("| request | requests/s | p50 (ms) | p99 (ms) | bytes sent |")
    print("|---|---|---|---|---|")
    for label, rps, p50, p99, size in results:
        print(f"| {label} | {rps:.1f} | {p50:.1f} | {p99:.1f} | {size / 1024:.0f} KiB |")


if __name__ == "__main__":
    main()
