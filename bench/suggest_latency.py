"""Time per suggestion with a history of 100, 1,000 and 5,000 trials, for each of our
algorithms next to the Optuna sampler it adapts (same search space, same history).

    python bench/suggest_latency.py [--sizes 100 1000 5000] [--repeat 3]

A 4-dimensional space (two doubles, an int, a categorical); the history's objective is a
sphere. Our time is one `Algorithm.suggest(experiment, trials, 1)` call as the controller
makes it; Optuna's is one `study.ask()` on an in-memory study already holding the trials.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from katib.controller import admit  # noqa: E402
from suggestion import TrialView, get_algorithm  # noqa: E402

PARAMS = [
    {"name": "x", "parameterType": "double", "feasibleSpace": {"min": "-5", "max": "5"}},
    {"name": "lr", "parameterType": "double", "feasibleSpace": {"min": "0.0001", "max": "1", "distribution": "logUniform"}},
    {"name": "n", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "64"}},
    {"name": "opt", "parameterType": "categorical", "feasibleSpace": {"list": ["sgd", "adam", "rmsprop"]}},
]
OURS = ["auto", "random", "sobol", "tpe", "multivariate-tpe", "cmaes", "bayesianoptimization"]


def experiment(algorithm: str):
    return admit({
        "apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment", "metadata": {"name": "latency"},
        "spec": {
            "objective": {"type": "minimize", "objectiveMetricName": "loss"},
            "algorithm": {"algorithmName": algorithm}, "parallelTrialCount": 1, "maxTrialCount": 100000,
            "parameters": PARAMS,
            "trialTemplate": {"primaryContainerName": "m", "trialParameters": [{"name": p["name"], "reference": p["name"]} for p in PARAMS],
                              "trialSpec": {"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [
                                  {"name": "m", "image": "x", "command": ["echo", *[f"${{trialParameters.{p['name']}}}" for p in PARAMS]]}]}}}}},
        },
    })


def history(n: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        p = {"x": float(rng.uniform(-5, 5)), "lr": float(10 ** rng.uniform(-4, 0)), "n": int(rng.integers(1, 65)),
             "opt": str(rng.choice(["sgd", "adam", "rmsprop"]))}
        out.append((p, p["x"] ** 2 + np.log10(p["lr"]) ** 2 + (p["n"] - 32) ** 2 / 100))
    return out


def ours(algorithm: str, n: int, repeat: int) -> float:
    exp = experiment(algorithm)
    views = [TrialView(f"t{i}", {k: str(v) for k, v in p.items()}, "Succeeded", y) for i, (p, y) in enumerate(history(n))]
    alg = get_algorithm(algorithm)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        alg.suggest(exp, views, 1)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def optuna_native(algorithm: str, n: int, repeat: int) -> float | None:
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
    from optuna.trial import create_trial

    samplers = {
        "random": lambda: optuna.samplers.RandomSampler(),
        "sobol": lambda: optuna.samplers.QMCSampler(qmc_type="sobol"),
        # Optuna 5's default TPE (multivariate), as our tpe; auto runs it on this space
        # (a categorical parameter).
        "tpe": lambda: optuna.samplers.TPESampler(multivariate=True, constant_liar=True),
        "auto": lambda: optuna.samplers.TPESampler(multivariate=True, constant_liar=True),
        "multivariate-tpe": lambda: optuna.samplers.TPESampler(multivariate=True, group=True, constant_liar=True),
        "cmaes": lambda: optuna.samplers.CmaEsSampler(),
        "bayesianoptimization": lambda: optuna.samplers.GPSampler(),
    }
    dists = {"x": FloatDistribution(-5, 5), "lr": FloatDistribution(1e-4, 1, log=True),
             "n": IntDistribution(1, 64), "opt": CategoricalDistribution(["sgd", "adam", "rmsprop"])}
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(sampler=samplers[algorithm]())
    for p, y in history(n):
        study.add_trial(create_trial(params=p, distributions=dists, value=y))
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        trial = study.ask(dists)
        times.append(time.perf_counter() - start)
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 5000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--algorithms", nargs="+", default=OURS)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    header = "| algorithm | " + " | ".join(f"ours @{n}" + " | " + f"Optuna @{n}" for n in args.sizes) + " |"
    print("Median seconds per suggestion (one new point), history of N completed trials\n")
    print(header)
    print("|" + "---|" * (1 + 2 * len(args.sizes)))
    for algorithm in args.algorithms:
        cells = []
        for n in args.sizes:
            if algorithm == "bayesianoptimization" and n > 1000:
                cells += ["(skipped: O(n³))", "(skipped: O(n³))"]
                continue
            cells.append(f"{ours(algorithm, n, args.repeat):.4f}")
            native = optuna_native(algorithm, n, args.repeat)
            cells.append("—" if native is None else f"{native:.4f}")
        print(f"| {algorithm} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
