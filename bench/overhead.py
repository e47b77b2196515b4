"""Controller overhead: N trivial trials at parallelism P, three ways, in one run.

(a) floor: a bare loop that starts the same processes with the same parallelism;
(b) `katib run`: the whole CLI (start-up, SQLite, collection, status) as a user runs it;
(c) Optuna: a study on SQLite whose objective starts the same process.

    python bench/overhead.py [--trials 300] [--parallel 2]

Prints a table; the figures in docs/benchmarks.md come from this script.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

CODE = "print('loss={x}')"


def command(x: str) -> list[str]:
    return [sys.executable, "-c", CODE.format(x=x)]


def floor(n: int, parallel: int, workdir: Path) -> float:
    def one(i: int) -> None:
        with open(workdir / f"floor-{i}.log", "wb") as log:
            subprocess.run(command(str(i / n)), stdout=log, stderr=subprocess.STDOUT, check=True)

    start = time.perf_counter()
    with ThreadPoolExecutor(parallel) as pool:
        list(pool.map(one, range(n)))
    return time.perf_counter() - start


def katib_run(n: int, parallel: int, workdir: Path) -> float:
    doc = {
        "apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment", "metadata": {"name": "overhead"},
        "spec": {
            "objective": {"type": "minimize", "objectiveMetricName": "loss"},
            "algorithm": {"algorithmName": "random"},
            "parallelTrialCount": parallel, "maxTrialCount": n, "maxFailedTrialCount": 0,
            "parameters": [{"name": "x", "parameterType": "double", "feasibleSpace": {"min": "0", "max": "1"}}],
            "trialTemplate": {
                "primaryContainerName": "main",
                "trialParameters": [{"name": "x", "reference": "x"}],
                "trialSpec": {"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {"spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "main", "image": "python", "command": command("${trialParameters.x}")}],
                }}}},
            },
        },
    }
    path = workdir / "overhead.yaml"
    path.write_text(yaml.safe_dump(doc))
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "katib", "run", str(path), "--db", str(workdir / "katib.db")],
                            capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0 or f"trials: {n} ({n} succeeded)" not in result.stdout:
        raise SystemExit(f"katib run failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return elapsed


def optuna_study(n: int, parallel: int, workdir: Path) -> float:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    pattern = re.compile(r"loss=([\d.eE+-]+)")

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0, 1)
        out = subprocess.run(command(str(x)), capture_output=True, text=True, check=True).stdout
        return float(pattern.search(out).group(1))  # type: ignore[union-attr]

    start = time.perf_counter()
    study = optuna.create_study(storage=f"sqlite:///{workdir / 'optuna.db'}", sampler=optuna.samplers.RandomSampler())
    study.optimize(objective, n_trials=n, n_jobs=parallel)
    elapsed = time.perf_counter() - start
    assert len(study.trials) == n
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=300)
    parser.add_argument("--parallel", type=int, default=2)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, fn in (("floor: bare process loop", floor), ("katib run (CLI, SQLite)", katib_run),
                          ("Optuna study (SQLite)", optuna_study)):
            workdir = Path(tmp) / label.split()[0]
            workdir.mkdir()
            rows.append((label, fn(args.trials, args.parallel, workdir)))
    base = rows[0][1]
    print(f"{args.trials} trials of `python -c \"print('loss=…')\"` at parallelism {args.parallel}\n")
    print(f"| {'variant':<26} | {'wall (s)':>8} | {'trials/s':>8} | {'vs floor':>8} | {'overhead/trial (ms)':>19} |")
    print(f"|{'-' * 28}|{'-' * 10}|{'-' * 10}|{'-' * 10}|{'-' * 21}|")
    for label, seconds in rows:
        per_trial = (seconds - base) / args.trials * args.parallel * 1000
        print(f"| {label:<26} | {seconds:>8.2f} | {args.trials / seconds:>8.1f} | {seconds / base:>7.2f}x | {per_trial:>19.1f} |")


if __name__ == "__main__":
    main()
