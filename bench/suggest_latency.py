"""Time per suggestion with a history of 100, 1,000 and 5,000 trials, for each of our
algorithms next to the Optuna sampler it adapts (same search space, same history).

    python bench/suggest_latency.py [--sizes 100 1000 5000] [--repeat 3] [--algorithms ...] [--clock wall|cpu]

A 4-dimensional space (two doubles, an int, a categorical); the history's objective is a
sphere. Our time is one `Algorithm.suggest(experiment, trials, 1, state)` call as the
controller makes it, its proposal then completed before the next (the median of --repeat
calls from N trials on); Optuna's is one `study.ask()` on an in-memory study already
holding the trials. For bayesianoptimization a second table splits its time into the calls
that refit the GP's kernel and those that do not.
"""

from __future__ import annotations

import argparse
import math
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
# --clock cpu: the process's CPU time (every thread), steadier than the wall clock on a
# loaded machine, and no lower than it for this single-threaded work.
CLOCK = time.perf_counter
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


def value(p: dict[str, str]) -> float:
    """The history's objective at a proposal (Katib strings)."""
    return float(p["x"]) ** 2 + float(np.log10(float(p["lr"]))) ** 2 + (float(p["n"]) - 32) ** 2 / 100


def ours(algorithm: str, n: int, repeat: int, state: dict | None = None) -> float:
    """The median of ``repeat`` calls on histories of n, n+1, ... completed trials: each
    proposal comes back completed (the controller's loop), after an untimed call at n-1
    (the sampler and, for bayesianoptimization, the kernel's fit in ``state`` are then
    what a running experiment holds)."""
    exp = experiment(algorithm)
    views = [TrialView(f"t{i}", {k: str(v) for k, v in p.items()}, "Succeeded", y) for i, (p, y) in enumerate(history(n))]
    alg = get_algorithm(algorithm)
    state = {} if state is None else state
    (a,) = alg.suggest(exp, views[:-1], 1, state)
    views[-1] = TrialView(a.name or "warm-up", a.parameters, "Succeeded", value(a.parameters))  # not left running
    times = []
    for _ in range(repeat):
        start = CLOCK()
        (a,) = alg.suggest(exp, views, 1, state)
        times.append(CLOCK() - start)
        views.append(TrialView(a.name or f"t{len(views)}", a.parameters, "Succeeded", value(a.parameters)))
    return statistics.median(times)


def gp_refit(n: int, repeat: int) -> tuple[float, float, int]:
    """bayesianoptimization at n trials: the median call without a kernel fit, the median
    call with one (warm-started from the fit k trials earlier, when the schedule refits),
    and k."""
    from suggestion._gp import REFIT_EVERY_TRIAL_UP_TO, refit_due

    k = next(k for k in range(1, n + 1) if refit_due(n, n - k))
    steady = ours("bayesianoptimization", n, repeat) if n > REFIT_EVERY_TRIAL_UP_TO else math.nan
    times = []
    for _ in range(repeat):
        state: dict = {}
        ours("bayesianoptimization", n - k, 1, state)  # the kernel fitted k trials ago
        exp = experiment("bayesianoptimization")
        views = [TrialView(f"t{i}", {a: str(v) for a, v in p.items()}, "Succeeded", y) for i, (p, y) in enumerate(history(n))]
        alg = get_algorithm("bayesianoptimization")
        start = CLOCK()
        alg.suggest(exp, views, 1, state)
        times.append(CLOCK() - start)
    return steady, statistics.median(times), k


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
        start = CLOCK()
        trial = study.ask(dists)
        times.append(CLOCK() - start)
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 5000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--algorithms", nargs="+", default=OURS)
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall")
    args = parser.parse_args()
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    warnings.simplefilter("ignore")
    header = "| algorithm | " + " | ".join(f"ours @{n}" + " | " + f"Optuna @{n}" for n in args.sizes) + " |"
    print(f"Median seconds ({args.clock} clock) per suggestion (one new point), history of N completed trials\n")
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
    if "bayesianoptimization" in args.algorithms:
        print("\nbayesianoptimization: the kernel refitted every k trials (suggestion/_gp.py)\n")
        print("| N | k | call without a fit | call with a fit (warm start) | mean over k calls |")
        print("|---|---|---|---|---|")
        for n in [n for n in args.sizes if n <= 1000]:
            steady, refit, k = gp_refit(n, args.repeat)
            mean = refit if k == 1 else ((k - 1) * steady + refit) / k
            print(f"| {n} | {k} | {'—' if k == 1 else f'{steady:.4f}'} | {refit:.4f} | {mean:.4f} |", flush=True)


if __name__ == "__main__":
    main()
