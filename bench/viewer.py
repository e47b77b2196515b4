"""The web viewer at scale: an experiment of 10,000 trials with 50 intermediate values each,
opened in a real browser (Debian's headless Chromium, driven by Playwright).

    python bench/viewer.py [--trials 10000] [--steps 50] [--runs 3] [--peer-timeout 300]
    python bench/viewer.py --trials 100000 --steps 20 --runs 2   # issue 15's scale
    python bench/viewer.py ... --reuse DIR   # seed into DIR once, measure again without seeding

Seeds a SQLite store directly (the trials as a finished random search over four parameters,
a learning curve per trial, a tenth early-stopped), serves it with `katib ui`, and prints for
the experiment page: the time from navigation until it is interactive (the summary fetched,
the best trial, history, parallel coordinates and the first page of the table drawn), the
bytes transferred, and the server's time for the summary request.

The peer, in the same run: the same trials in an Optuna study (a journal file), served by
optuna-dashboard, whose study page counts as interactive once its history plot has drawn.
A load that takes longer than ``--peer-timeout`` seconds is recorded as timed out, with
what it had transferred by then.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
        "--disable-background-networking", "--disable-component-update"]


def trial_data(n: int, steps: int):
    """The same synthetic search for both viewers: parameters, a learning curve, early stop."""
    rng = random.Random(0)
    for _ in range(n):
        lr, layers, dropout, opt = 10 ** rng.uniform(-4, -1), rng.randint(1, 8), rng.uniform(0, 0.5), rng.choice(["sgd", "adam", "rmsprop"])
        final = 0.05 + abs(math.log10(lr) + 2.5) * 0.3 + 0.02 * abs(layers - 4) + dropout * 0.2 + (0.1 if opt == "sgd" else 0)
        stopped = rng.random() < 0.1
        length = steps // 3 if stopped else steps
        yield lr, layers, dropout, opt, [final + 2.0 / (k + 1) + rng.gauss(0, 0.01) for k in range(length)], stopped


def seed_optuna(path: str, n: int, steps: int) -> None:
    """The same trials in an Optuna study (a journal file, which optuna-dashboard reads)."""
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend
    from optuna.trial import TrialState, create_trial

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="big", storage=JournalStorage(JournalFileBackend(path)), direction="minimize")
    dists = {"lr": FloatDistribution(1e-4, 0.1, log=True), "layers": IntDistribution(1, 8),
             "dropout": FloatDistribution(0, 0.5), "optimizer": CategoricalDistribution(["sgd", "adam", "rmsprop"])}
    study.add_trials([
        create_trial(params={"lr": lr, "layers": layers, "dropout": dropout, "optimizer": opt}, distributions=dists,
                     value=None if stopped else curve[-1], state=TrialState.PRUNED if stopped else TrialState.COMPLETE,
                     intermediate_values=dict(enumerate(curve)))
        for lr, layers, dropout, opt, curve, stopped in trial_data(n, steps)])


def seed(db: str, n: int, steps: int) -> None:
    from katib.controller import admit
    from katib.controller._status import experiment_status, mark_trial
    from katib.spec import ExperimentStatus
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
    records, curves = [], []
    for i, (lr, layers, dropout, opt, curve, stopped) in enumerate(trial_data(n, steps)):
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
    status = experiment_status(exp, records, ExperimentStatus.model_validate({"conditions": [
        {"type": "Created", "status": "True", "reason": "ExperimentCreated", "message": "Experiment is created"},
        {"type": "Succeeded", "status": "True", "reason": "ExperimentMaxTrialsReached", "message": "Experiment has succeeded"}],
        "startTime": "2026-01-01T00:00:00Z", "completionTime": "2026-01-01T06:00:00Z"}))
    store.update_experiment(rec.id, status=status)
    store.close()


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(argv: list[str], probe: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    for _ in range(600):
        try:
            urllib.request.urlopen(probe, timeout=1)
            return proc
        except OSError:
            time.sleep(0.1)
    proc.terminate()
    raise RuntimeError(f"{argv[0]} did not start")


def _renderers() -> list[int]:
    """The Chromium renderer processes descended from this one (Linux's /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(stat.parent.name))
    found, todo = [], [os.getpid()]
    while todo:
        for child in children.get(todo.pop(), []):
            todo.append(child)
            try:
                if b"--type=renderer" in Path(f"/proc/{child}/cmdline").read_bytes():
                    found.append(child)
            except OSError:
                pass
    return found


def _kill_renderers() -> None:
    for pid in _renderers():
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def _load(browser, url: str, ready_js: str, screenshot: str | None = None,
          timeout: float = 300) -> tuple[float | None, dict]:
    """One cold load: seconds from navigation until ``ready_js`` holds (None: not within
    ``timeout`` seconds), and bytes moved. A page whose main thread stays busy never lets
    Playwright's own time-out fire: a watchdog kills its renderer a few seconds after."""
    from playwright.sync_api import Error as PlaywrightError

    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    ready: float | None
    watchdog = threading.Timer(timeout + 5, _kill_renderers)
    watchdog.start()
    try:
        page.goto(url, timeout=timeout * 1000, wait_until="commit")
        page.wait_for_function(ready_js, timeout=timeout * 1000, polling=50)
        watchdog.cancel()  # interactive: nothing more to kill
        ready = page.evaluate("performance.now()") / 1000
    except PlaywrightError:  # its time-out, or the renderer the watchdog killed
        try:
            context.close()
        except PlaywrightError:
            pass
        return None, {"total": float("nan"), "data": float("nan"), "decoded": float("nan")}
    finally:
        watchdog.cancel()
    sizes = page.evaluate("""() => {
        const nav = performance.getEntriesByType('navigation')[0];
        const res = performance.getEntriesByType('resource');
        const data = res.filter(r => r.initiatorType === 'fetch' || r.initiatorType === 'xmlhttprequest');
        return {total: nav.transferSize + res.reduce((a, r) => a + r.transferSize, 0),
                data: data.reduce((a, r) => a + r.transferSize, 0),
                decoded: data.reduce((a, r) => a + r.decodedBodySize, 0)};
    }""")
    if screenshot:
        page.wait_for_timeout(500)
        page.screenshot(path=screenshot, full_page=True)
    context.close()
    return ready, sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-peer", action="store_true", help="skip optuna-dashboard")
    parser.add_argument("--peer-timeout", type=float, default=300, help="give up on a load after this many seconds")
    parser.add_argument("--screenshot", help="save the last load of our page as this PNG")
    parser.add_argument("--reuse", help="a folder to seed into and keep; seeding is skipped where its files exist")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    work = Path(args.reuse) if args.reuse else Path(tempfile.mkdtemp())
    work.mkdir(parents=True, exist_ok=True)
    db, journal = str(work / "big.db"), str(work / "optuna.journal")
    started = time.perf_counter()
    if not Path(db).exists():
        seed(db, args.trials, args.steps)
        print(f"seeded katib's store: {args.trials} trials x {args.steps} values in {time.perf_counter() - started:.1f} s")
    peer = not args.no_peer and shutil.which("optuna-dashboard", path=str(Path(sys.executable).parent)) is not None
    if not args.no_peer and not peer:
        print("optuna-dashboard is not installed (pip install -e '.[bench]'): measuring katib alone")
    if peer and not Path(journal).exists():
        started = time.perf_counter()
        seed_optuna(journal, args.trials, args.steps)
        print(f"seeded the same trials into an Optuna journal in {time.perf_counter() - started:.1f} s")
    rows: list[tuple[str, int, float | None, dict]] = []
    port = _port()
    server = _serve([sys.executable, "-m", "katib", "ui", "--db", db, "--port", str(port)], f"http://127.0.0.1:{port}/healthz")
    try:
        t0 = time.perf_counter()
        with urllib.request.urlopen(urllib.request.Request(
                f"http://127.0.0.1:{port}/api/v1/namespaces/default/experiments/big/summary",
                headers={"Accept-Encoding": "gzip"})) as r:
            body = r.read()
        summary_ms = (time.perf_counter() - t0) * 1000
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=ARGS)
            for run in range(args.runs):
                shot = args.screenshot if run == args.runs - 1 else None
                seconds, sizes = _load(browser, f"http://127.0.0.1:{port}/#/e/default/big", "window.__katibReady === true", shot)
                rows.append(("katib", run + 1, seconds, sizes))
                print(f"katib, load {run + 1}: {seconds} s", flush=True)
            browser.close()
    finally:
        server.terminate()
        server.wait(30)
    if peer:
        port = _port()
        dashboard = str(Path(sys.executable).with_name("optuna-dashboard"))
        server = _serve([dashboard, journal, "--host", "127.0.0.1", "--port", str(port)], f"http://127.0.0.1:{port}/api/studies")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies") as r:
                study_id = json.loads(r.read())["study_summaries"][0]["study_id"]
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=chromium, args=ARGS)
                for run in range(args.runs):
                    # Its study page is usable once the history plot (Plotly) has drawn its trials.
                    seconds, sizes = _load(browser, f"http://127.0.0.1:{port}/dashboard/studies/{study_id}",
                                           "document.querySelectorAll('.js-plotly-plot .scatterlayer .trace').length > 0",
                                           timeout=args.peer_timeout)
                    rows.append(("optuna-dashboard", run + 1, seconds, sizes))
                    print(f"optuna-dashboard, load {run + 1}: {seconds} s", flush=True)
                    if seconds is None:  # one time-out is the answer: the next load would time out too
                        break
                browser.close()
        finally:
            server.terminate()
            server.wait(30)
    print(f"\nexperiment page of {args.trials} trials x {args.steps} intermediate values, {args.runs} cold loads each\n")
    print("| viewer | load | interactive (s) | transferred (KiB) | of it: data requests (KiB; decoded KiB) |")
    print("|---|---|---|---|---|")
    for viewer, run, seconds, sizes in rows:
        shown = f"{seconds:.2f}" if seconds is not None else f"timed out (> {args.peer_timeout:.0f})"
        print(f"| {viewer} | {run} | {shown} | {sizes['total'] / 1024:,.0f} | {sizes['data'] / 1024:,.0f}; {sizes['decoded'] / 1024:,.0f} |")
    print()
    for viewer in dict.fromkeys(r[0] for r in rows):
        done = [r[2] for r in rows if r[0] == viewer and r[2] is not None]
        print(f"{viewer}: " + (f"median {statistics.median(done):.2f} s to interactive" if done
                               else f"not interactive within {args.peer_timeout:.0f} s"))
    print(f"katib's summary request alone: {summary_ms:.0f} ms ({len(body) / 1024:.0f} KiB gzip)")
    if not args.reuse:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
