"""Experiments of 100,000 trials (issue 16): the controller's bookkeeping per trial as an
experiment grows, the reads the API and viewer make, and a whole 100,000-trial run.

    python bench/scale.py bookkeeping [--sizes 1000 10000 100000] [--new 500] [--parallel 32]
    python bench/scale.py reads --db PATH_OR_URL      # a store holding experiment default/big
    python bench/scale.py full [--trials 100000] [--parallel 64]
    python bench/scale.py copy --db SQLITE_PATH --to POSTGRESQL_URL   # the same rows into PostgreSQL

``bookkeeping``: for each size N, a SQLite store is filled with an experiment of N ended
trials (written directly, as a finished random search), its budget raised by ``--new``, and
the real controller (``Controller.run`` with the local executor, the process's own code
path) runs the new trials: each is a real process, ``sh -c 'echo loss=…'``, whose output
the StdOut collector reads. Measured: the time to take the experiment up (reading its N
trials), then, from the first launch to the end, the controller process's own CPU time
per trial (``getrusage(RUSAGE_SELF)``: the controller's threads, not the trials'
processes) and the wall time per trial, up to the last new trial's end; then, apart, the
run's end (its final status over every trial, once per run). Flat from 1,000 to 100,000
is the target.

``reads``: on an existing store (``bench/viewer.py --reuse DIR`` seeds one: DIR/big.db),
the p50 of reading one experiment, of a 100-trial page (``trial_page``, keyset) at the
start, middle and end, and the time of the viewer's summary computed afresh.

``full``: a new experiment of ``--trials`` trials of the same trivial command, run from
nothing to the end by the real controller and the local executor.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def experiment_doc(name: str, max_trials: int, parallel: int) -> dict[str, Any]:
    return {
        "apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment", "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "objective": {"type": "minimize", "objectiveMetricName": "loss"},
            "algorithm": {"algorithmName": "random"},
            "parallelTrialCount": parallel, "maxTrialCount": max_trials, "maxFailedTrialCount": max_trials,
            "parameters": [{"name": "x", "parameterType": "double", "feasibleSpace": {"min": "0", "max": "1"}}],
            "trialTemplate": {
                "primaryContainerName": "main",
                "trialParameters": [{"name": "x", "reference": "x"}],
                "trialSpec": {"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {"spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "main", "image": "sh",
                                    "command": ["sh", "-c", "echo loss=${trialParameters.x}"]}],
                }}}},
            },
        },
    }


def prefill(store: Any, ctl: Any, n: int, parallel: int, new: int, workdir: Path) -> Any:
    """An experiment of ``n`` ended trials (as a finished random search writes them) whose
    budget allows ``new`` more."""
    import random

    from katib.controller import admit
    from katib.controller._status import mark_trial
    from katib.store import TrialRecord

    exp = admit(experiment_doc("big", n + new, parallel))
    rec, _ = ctl.submit(exp, workdir)
    rng = random.Random(0)
    start = time.time() - n
    for first in range(0, n, 5000):
        batch = []
        for i in range(first, min(n, first + 5000)):
            x = rng.random()
            t = TrialRecord(id=0, experiment_id=rec.id, name=f"big-{i:06d}", state="Created",
                            assignments=[{"name": "x", "value": repr(x)}],
                            labels={"katib.kubeflow.org/experiment": "big"}, created_at=start + i,
                            start_time=start + i, completion_time=start + i + 0.5)
            mark_trial(t, "Created")
            mark_trial(t, "Running")
            mark_trial(t, "Succeeded")
            t.observation = {"loss": {"min": f"{x:.6f}", "max": f"{x:.6f}", "latest": f"{x:.6f}"}}
            t.objective = x
            batch.append(t)
        store.add_trials(batch)
    return rec


def bookkeeping(sizes: list[int], new: int, parallel: int) -> None:
    from katib.controller import Controller
    from katib.store import Store

    rows = []
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            store = Store(str(work / "katib.db"))
            marks: dict[str, float] = {}

            def listener(event: str, run: Any, trial: Any, marks: dict[str, float] = marks) -> None:
                if event == "launched" and "first" not in marks:
                    marks["first"], marks["cpu"] = time.perf_counter(), _cpu()
                if event == "finished":
                    marks["ended"] = marks.get("ended", 0) + 1
                    if marks["ended"] == new:  # the last new trial's end noted (before the run's final status)
                        marks["last"], marks["last_cpu"] = time.perf_counter(), _cpu()

            ctl = Controller(store, runs_root=work / "runs", tick=0.2, listener=listener)
            t0 = time.perf_counter()
            prefill(store, ctl, n, parallel, new, work)
            filled = time.perf_counter() - t0
            t0 = time.perf_counter()
            status = ctl.run("default", "big")
            end, cpu = time.perf_counter(), _cpu()
            ended = store.get_experiment("default", "big").status
            store.close()
            rows.append((n, filled, marks["first"] - t0, (marks["last_cpu"] - marks["cpu"]) * 1000 / new,
                         (marks["last"] - marks["first"]) * 1000 / new, end - marks["last"], cpu - marks["last_cpu"],
                         f"{ended.trials_succeeded - n} of {new} succeeded, ended {status.conditions[-1].reason}"))
            print(f"N={n}: filled in {filled:.1f} s, taken up in {marks['first'] - t0:.2f} s, "
                  f"{rows[-1][3]:.2f} ms CPU and {rows[-1][4]:.2f} ms wall per new trial, "
                  f"the end's status {rows[-1][6]:.2f} s CPU", flush=True)
    print(f"\ncontroller bookkeeping per trial, {new} new trials of `sh -c 'echo loss=…'` at parallelism {parallel}, "
          "SQLite, local executor\n")
    print("| trials already in the experiment | fill (s) | take-up (s) | controller CPU per new trial (ms) "
          "| wall per new trial (ms) | the end (s wall; s CPU) | new trials |")
    print("|---|---|---|---|---|---|---|")
    for n, filled, taken, cpu_ms, wall_ms, end_wall, end_cpu, ran in rows:
        print(f"| {n:,} | {filled:.1f} | {taken:.2f} | {cpu_ms:.2f} | {wall_ms:.2f} | {end_wall:.2f}; {end_cpu:.2f} "
              f"| {ran} |")


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _p50(fn: Any, n: int = 30) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def reads(db: str) -> None:
    from api import _summary
    from katib.store import Store, iter_trials, trial_page

    store = Store(db)
    rec = store.get_experiment("default", "big")
    n = store.get_experiment("default", "big").status.trials
    tokens: dict[str, str | None] = {"start": None}
    seen = 0
    for t in iter_trials(store, rec, page=1000):  # the tokens of the middle and the last pages
        seen += 1
        if seen == n // 2:
            tokens["middle"] = _token_after(store, rec, t.id)
        if seen == n - 100:
            tokens["end"] = _token_after(store, rec, t.id)
    print(f"\nreads on {store.dialect}, experiment of {n:,} trials\n")
    print("| read | p50 (ms) |")
    print("|---|---|")
    print(f"| one experiment (store.get_experiment) | {_p50(lambda: store.get_experiment('default', 'big')):.1f} |")
    for where, token in tokens.items():
        print(f"| a page of 100 trials at the {where} (trial_page) | "
              f"{_p50(lambda token=token: trial_page(store, rec, 100, token)):.1f} |")
    times = []
    for _ in range(3):
        _summary._summary_cache.clear()
        t0 = time.perf_counter()
        result = _summary.experiment_summary(store, rec)
        times.append(time.perf_counter() - t0)
    print(f"| the viewer's summary, computed afresh ({len(result['columns']['name']):,} trials; median of 3) "
          f"| {statistics.median(times) * 1000:.0f} |")
    store.close()


def _token_after(store: Any, rec: Any, trial_id: int) -> str:
    from katib.store._paging import encode_token

    return encode_token(rec, trial_id)


def full(trials: int, parallel: int) -> None:
    from katib.controller import Controller, admit
    from katib.store import Store

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        store = Store(str(work / "katib.db"))
        done = [0]
        t0 = time.perf_counter()

        def listener(event: str, run: Any, trial: Any) -> None:
            if event == "finished":
                done[0] += 1
                if done[0] % 10_000 == 0:
                    print(f"{done[0]:,} trials ended after {time.perf_counter() - t0:.0f} s "
                          f"(controller CPU {_cpu():.0f} s)", flush=True)

        ctl = Controller(store, runs_root=work / "runs", tick=0.2, listener=listener)
        ctl.submit(admit(experiment_doc("big", trials, parallel)), work)
        status = ctl.run("default", "big")
        wall = time.perf_counter() - t0
        rec = store.get_experiment("default", "big")
        print(f"\n{trials:,} trials of `sh -c 'echo loss=…'` at parallelism {parallel}, SQLite, local executor: "
              f"{wall:.0f} s wall, {trials / wall:.0f} trials/s, controller CPU {_cpu():.0f} s; "
              f"{rec.status.trials_succeeded:,} succeeded, {rec.status.trials_failed} failed; "
              f"ended {status.conditions[-1].reason}")
        store.close()


def copy(db: str, to: str) -> None:
    """Every experiment, trial and observation row of a SQLite store into a new (empty)
    PostgreSQL database, ids kept: what ``reads`` measures on PostgreSQL."""
    import sqlalchemy as sa

    from katib.store import Store
    from katib.store._schema import experiments, observations, trials

    src, dst = Store(db), Store(to)
    t0 = time.perf_counter()
    with src._engine.connect() as a, dst._engine.begin() as b:
        for table in (experiments, trials, observations):
            result = a.execute(table.select().order_by(table.c.id))
            while rows := result.fetchmany(20_000):
                b.execute(table.insert(), [dict(r._mapping) for r in rows])
            b.execute(sa.text(f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                              f"(SELECT max(id) FROM {table.name}))"))
    with dst._engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.execute(sa.text("VACUUM ANALYZE"))
    print(f"copied in {time.perf_counter() - t0:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    b = sub.add_parser("bookkeeping")
    b.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000])
    b.add_argument("--new", type=int, default=500)
    b.add_argument("--parallel", type=int, default=32)
    r = sub.add_parser("reads")
    r.add_argument("--db", required=True)
    f = sub.add_parser("full")
    f.add_argument("--trials", type=int, default=100_000)
    f.add_argument("--parallel", type=int, default=64)
    c = sub.add_parser("copy")
    c.add_argument("--db", required=True)
    c.add_argument("--to", required=True, help="a PostgreSQL URL of an empty database")
    args = parser.parse_args()
    if args.what == "copy":
        copy(args.db, args.to)
    elif args.what == "bookkeeping":
        bookkeeping(args.sizes, args.new, args.parallel)
    elif args.what == "reads":
        reads(args.db)
    else:
        full(args.trials, args.parallel)


if __name__ == "__main__":
    main()
