"""Fan-out: N trivial trials, on the local executor, on Ray, and with Ray Tune's own
Tuner on the same objective and the same (local, 2-CPU) cluster, in one run.

    python bench/fanout.py [--trials 500] [--parallel 2]

The objective is the same process for all three: `python -c "print('loss=…')"`.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CODE = "print('loss={x}')"


def experiment(n: int, parallel: int) -> dict:
    return {
        "apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment", "metadata": {"name": "fanout"},
        "spec": {
            "objective": {"type": "minimize", "objectiveMetricName": "loss"},
            "algorithm": {"algorithmName": "random"},
            "parallelTrialCount": parallel, "maxTrialCount": n, "maxFailedTrialCount": 0,
            "parameters": [{"name": "x", "parameterType": "double", "feasibleSpace": {"min": "0", "max": "1"}}],
            "trialTemplate": {
                "primaryContainerName": "main", "trialParameters": [{"name": "x", "reference": "x"}],
                "trialSpec": {"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {"spec": {
                    "restartPolicy": "Never", "containers": [{"name": "main", "image": "python", "resources": {"limits": {"cpu": "1"}},
                                                              "command": [sys.executable, "-c", CODE.format(x="${trialParameters.x}")]}]}}}},
            },
        },
    }


def katib(n: int, parallel: int, executor: str, workdir: Path) -> float:
    path = workdir / "fanout.yaml"
    path.write_text(yaml.safe_dump(experiment(n, parallel)))
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "katib", "run", str(path), "--db", str(workdir / "k.db"),
                             "--executor", executor], capture_output=True, text=True,
                            env={**os.environ, "RAY_AUTH_MODE": "disabled"})
    elapsed = time.perf_counter() - start
    if result.returncode != 0 or f"trials: {n} ({n} succeeded)" not in result.stdout:
        raise SystemExit(f"katib ({executor}) failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return elapsed


def ray_tune(n: int, parallel: int, workdir: Path) -> float:
    code = f"""
import re, subprocess, sys, time
import ray
from ray import tune

def objective(config):
    out = subprocess.run([sys.executable, "-c", "print('loss=' + str(%r))" % config["x"]], capture_output=True, text=True).stdout
    return {{"loss": float(re.search(r"loss=([0-9.eE+-]+)", out).group(1))}}

ray.init(num_cpus={parallel}, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
start = time.perf_counter()
tuner = tune.Tuner(objective, param_space={{"x": tune.uniform(0, 1)}},
                   tune_config=tune.TuneConfig(num_samples={n}, max_concurrent_trials={parallel}, metric="loss", mode="min",
                                               reuse_actors=True),
                   run_config=tune.RunConfig(storage_path={str(workdir)!r}, verbose=0))
results = tuner.fit()
assert len(results) == {n} and not results.errors
print("ELAPSED", time.perf_counter() - start)
"""
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**os.environ, "RAY_AUTH_MODE": "disabled"})
    if result.returncode != 0:
        raise SystemExit(f"Ray Tune failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=500)
    parser.add_argument("--parallel", type=int, default=2)
    args = parser.parse_args()
    # The peer runs last: without Ray Tune's dependencies (`ray[tune]`), say so before
    # katib's runs, not after them.
    from ray import tune  # noqa: F401
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, fn in (("katib run, local executor", lambda d: katib(args.trials, args.parallel, "local", d)),
                          ("katib run --executor ray", lambda d: katib(args.trials, args.parallel, "ray", d)),
                          ("Ray Tune Tuner", lambda d: ray_tune(args.trials, args.parallel, d))):
            workdir = Path(tmp) / label.split()[-1]
            workdir.mkdir()
            rows.append((label, fn(workdir)))
    print(f"{args.trials} trials of `python -c \"print('loss=…')\"`, {args.parallel} at a time, "
          "whole command including start-up (Ray clusters started by each run)\n")
    print("| variant | wall (s) | trials/s |")
    print("|---|---|---|")
    for label, seconds in rows:
        print(f"| {label} | {seconds:.1f} | {args.trials / seconds:.1f} |")


if __name__ == "__main__":
    main()
