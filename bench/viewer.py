"""The web viewer at scale: an experiment of 10,000 trials with 50 intermediate values each,
opened in a real browser (Debian's headless Chromium, driven by Playwright).

    python bench/viewer.py [--trials 10000] [--steps 50] [--runs 3]

Seeds a SQLite store directly (the trials as a finished random search over four parameters,
a learning curve per trial, a tenth early-stopped), serves it with `katib ui`, and prints for
the experiment page: the time from navigation until it is interactive (the summary fetched,
the best trial, history, parallel coordinates and the first page of the table drawn), the
bytes transferred, and the server's time for the summary request.
"""

from __future__ import annotations

import argparse
import math
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
        "--disable-background-networking", "--disable-component-update"]


def seed(db: str, n: int, steps: int) -> None:
    from katib.controller import admit
    from katib.controller._status import experiment_status, mark_trial
    from katib.store import ObservationRow, Store, TrialRecord

    doc = {
        "apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment", "metadata": {"name": "big", "namespace": "default"},
        "spec": {
            "objective": {"type": "minimize", "objectiveMetricName": "loss", "additionalMetricNames": ["accuracy"]},
            "algorithm": {"algorithmName": "random"}, "parallelTrialCount": 8, "maxTrialCount": n,
            "parameters": [
                {"name": "lr", "parameterType": "double", "feasibleSpace": {"min": "0.0001", "max": "0.1", "distribution": "logUniform"}},
                {"name": "layers", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "8"}},
                {"name": "dropout", "parameterType": "double", "feasibleSpace": {"min": "0", "max": "0.5"}},
                {"name": "optimizer", "parameterType": "categorical", "feasibleSpace": {"list": ["sgd", "adam", "rmsprop"]}},
            ],
            "trialTemplate": {"primaryContainerName": "m", "trialParameters": [
                {"name": k, "reference": k} for k in ("lr", "layers", "dropout", "optimizer")],
                "trialSpec": {"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {"spec": {"restartPolicy": "Never",
                    "containers": [{"name": "m", "image": "x", "command": ["echo", "${trialParameters.lr}", "${trialParameters.layers}",
                                                                              "${trialParameters.dropout}", "${trialParameters.optimizer}"]}]}}}}},
        },
    }
    exp = admit(doc)
    store = Store(db)
    now = time.time() - n * 2
    rec = store.create_experiment("default", "big", exp.model_dump(by_alias=True, exclude_none=True, mode="json"),
                                  {"conditions": []}, "/tmp")
    rng = random.Random(0)
    records, curves = [], []
    for i in range(n):
        lr, layers, dropout, opt = 10 ** rng.uniform(-4, -1), rng.randint(1, 8), rng.uniform(0, 0.5), rng.choice(["sgd", "adam", "rmsprop"])
        final = 0.05 + abs(math.log10(lr) + 2.5) * 0.3 + 0.02 * abs(layers - 4) + dropout * 0.2 + (0.1 if opt == "sgd" else 0)
        stopped = rng.random() < 0.1
        length = steps // 3 if stopped else steps
        curve = [final + 2.0 / (k + 1) + rng.gauss(0, 0.01) for k in range(length)]
        t = TrialRecord(id=0, experiment_id=rec.id, name=f"big-{i:05d}", state="Created",
                        assignments=[{"name": "lr", "value": repr(lr)}, {"name": "layers", "value": str(layers)},
                                     {"name": "dropout", "value": repr(dropout)}, {"name": "optimizer", "value": opt}],
                        labels={"katib.kubeflow.org/experiment": "big"}, created_at=now + 2 * i, start_time=now + 2 * i,
                        completion_time=now + 2 * i + 60)
        mark_trial(t, "Created")
        mark_trial(t, "EarlyStopped" if stopped else "Succeeded")
        t.observation = {"loss": {"min": f"{min(curve):.5f}", "max": f"{max(curve):.5f}", "latest": f"{curve[-1]:.5f}"},
                         "accuracy": {"min": "0.5", "max": f"{1 - curve[-1] / 3:.5f}", "latest": f"{1 - curve[-1] / 3:.5f}"}}
        t.objective = curve[-1]
        records.append(t)
        curves.append(curve)
    records = store.add_trials(records)
    for start in range(0, n, 500):
        samples = []
        for t, curve in zip(records[start:start + 500], curves[start:start + 500], strict=True):
            samples += [(t.id, ObservationRow(t.start_time + k, "loss", f"{v:.5f}")) for k, v in enumerate(curve)]
        store.write_trials(samples=samples)
    status = experiment_status(exp, records, {"conditions": [
        {"type": "Created", "status": "True", "reason": "ExperimentCreated", "message": "Experiment is created"},
        {"type": "Succeeded", "status": "True", "reason": "ExperimentMaxTrialsReached", "message": "Experiment has succeeded"}],
        "startTime": "2026-01-01T00:00:00Z", "completionTime": "2026-01-01T06:00:00Z"})
    store.update_experiment(rec.id, status=status)
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--screenshot", help="save the last load's page as this PNG")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    work = Path(tempfile.mkdtemp())
    db = str(work / "big.db")
    started = time.perf_counter()
    seed(db, args.trials, args.steps)
    print(f"seeded {args.trials} trials x {args.steps} values in {time.perf_counter() - started:.1f} s")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "katib", "ui", "--db", db, "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(base + "/healthz", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        server_times = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            req = urllib.request.Request(base + "/api/v1/namespaces/default/experiments/big/summary",
                                         headers={"Accept-Encoding": "gzip"})
            with urllib.request.urlopen(req) as r:
                body = r.read()
            server_times.append(time.perf_counter() - t0)
        rows = []
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=ARGS)
            for run in range(args.runs):
                context = browser.new_context(viewport={"width": 1400, "height": 1000})  # a cold cache each time
                page = context.new_page()
                page.goto(f"{base}/#/e/default/big")
                page.wait_for_function("window.__katibReady === true", timeout=60_000)
                ready = page.evaluate("performance.now()")
                sizes = page.evaluate("""() => {
                    const nav = performance.getEntriesByType('navigation')[0];
                    const res = performance.getEntriesByType('resource');
                    const by = n => res.filter(r => r.name.includes(n)).reduce((a, r) => a + r.transferSize, 0);
                    return {total: nav.transferSize + res.reduce((a, r) => a + r.transferSize, 0),
                            summary: by('/summary'), echarts: by('echarts'), decoded: by('/summary') && res.filter(r => r.name.includes('/summary'))[0].decodedBodySize};
                }""")
                count = page.inner_text("#count")
                rows.append((run + 1, ready / 1000, sizes, count))
                if args.screenshot and run == args.runs - 1:
                    page.wait_for_timeout(500)
                    page.screenshot(path=args.screenshot, full_page=True)
                context.close()
            browser.close()
    finally:
        server.terminate()
        server.wait(30)
    print(f"\nexperiment page of {args.trials} trials x {args.steps} intermediate values, {args.runs} cold loads\n")
    print("| load | interactive (s) | transferred (KiB) | of it: summary (KiB, gzip; JSON KiB) | of it: ECharts (KiB) | table |")
    print("|---|---|---|---|---|---|")
    for run, seconds, sizes, count in rows:
        print(f"| {run} | {seconds:.2f} | {sizes['total'] / 1024:.0f} | {sizes['summary'] / 1024:.0f}; {sizes['decoded'] / 1024:.0f} "
              f"| {sizes['echarts'] / 1024:.0f} | {count} |")
    print(f"\nmedian interactive {statistics.median(r[1] for r in rows):.2f} s; summary request alone "
          f"{statistics.median(server_times) * 1000:.0f} ms ({len(body) / 1024:.0f} KiB gzip)")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
