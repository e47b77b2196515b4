"""The shared suite every algorithm passes, plus each algorithm's own behaviour."""

from __future__ import annotations

import math
import statistics

import pytest

from katib.controller import admit
from suggestion import TrialView, algorithm_names, get_algorithm
from tests.conftest import experiment

ALL_TYPES = [
    {"name": "d", "parameterType": "double", "feasibleSpace": {"min": "0.001", "max": "0.1", "distribution": "logUniform"}},
    {"name": "n", "parameterType": "double", "feasibleSpace": {"min": "-1", "max": "1", "distribution": "normal"}},
    {"name": "ln", "parameterType": "double", "feasibleSpace": {"min": "1", "max": "100", "distribution": "logNormal"}},
    {"name": "q", "parameterType": "double", "feasibleSpace": {"min": "0.5", "max": "2.5", "step": "0.5"}},
    {"name": "i", "parameterType": "int", "feasibleSpace": {"min": "2", "max": "11", "step": "3"}},
    {"name": "li", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "1024", "distribution": "logUniform"}},
    {"name": "disc", "parameterType": "discrete", "feasibleSpace": {"list": ["16", "32", "64"]}},
    {"name": "cat", "parameterType": "categorical", "feasibleSpace": {"list": ["sgd", "adam"]}},
]
GRIDDABLE = [p for p in ALL_TYPES if p["parameterType"] != "double" or "step" in p["feasibleSpace"]]
# The algorithms over parameters; ENAS and DARTS search nasConfig spaces (tests/nas_tests).
PARAMETER_SEARCHES = sorted(n for n in algorithm_names() if not get_algorithm(n).searches_nas)


def exp_for(algorithm: str, params: list[dict], seed: str | None = "3"):
    settings = [{"name": "random_state", "value": seed}] if seed and "random_state" in get_algorithm(algorithm).settings else []
    if algorithm == "hyperband":  # the resource is a parameter the algorithm sets itself
        params = [*params, {"name": "epochs", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "9"}}]
        settings += [{"name": "r_l", "value": "9"}, {"name": "resource_name", "value": "epochs"}]
    if algorithm == "pbt":  # Katib's pbt needs these three
        settings += [{"name": "suggestion_trial_dir", "value": "/var/log/katib/checkpoints/"},
                     {"name": "n_population", "value": "5"}, {"name": "truncation_threshold", "value": "0.2"}]
    # Katib's grid refuses a maxTrialCount above its points; without one, it runs them all.
    doc = experiment(parameters=params, algorithm={"algorithmName": algorithm, "algorithmSettings": settings},
                     maxTrialCount=None if algorithm == "grid" else 500, parallelTrialCount=10)
    doc["spec"]["trialTemplate"]["trialParameters"] = [{"name": p["name"], "reference": p["name"]} for p in params]
    doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]["command"] = [
        "echo", *[f"${{trialParameters.{p['name']}}}" for p in params]]
    return admit(doc)


def params_for(algorithm: str) -> list[dict]:
    return GRIDDABLE if algorithm == "grid" else ALL_TYPES


def in_space(p: dict, value: str) -> bool:
    fs, kind = p["feasibleSpace"], p["parameterType"]
    if kind in ("discrete", "categorical"):
        return value in fs["list"]
    x = float(value)
    if kind == "int" and str(int(x)) != value:
        return False
    lo, hi = float(fs["min"]), float(fs["max"])
    if not lo <= x <= hi:
        return False
    if "step" in fs:
        k = (x - lo) / float(fs["step"])
        return abs(k - round(k)) < 1e-9
    return True


@pytest.mark.parametrize("name", PARAMETER_SEARCHES)
def test_proposals_stay_in_the_feasible_space(name):
    params = params_for(name)
    exp = exp_for(name, params)
    out = get_algorithm(name).suggest(exp, [], 40)
    assert out
    for a in out:
        for p in params:
            assert in_space(p, a.parameters[p["name"]]), (p, a.parameters)


# Hyperband proposes a configuration again with more resource and ends with its plan;
# PBT trains the same configuration on from different checkpoints and never ends by itself:
# their own tests cover them.
POINT_SEARCHES = sorted(set(PARAMETER_SEARCHES) - {"hyperband", "pbt"})


@pytest.mark.parametrize("name", POINT_SEARCHES)
def test_parallel_proposals_never_repeat_a_point(name):
    b = ({"name": "b", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "3"}} if name == "cmaes"  # 2 numeric
         else {"name": "b", "parameterType": "discrete", "feasibleSpace": {"list": ["0.5", "1", "2"]}})
    params = [{"name": "a", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "4"}}, b]
    exp = exp_for(name, params)
    alg = get_algorithm(name)
    running = [TrialView(f"t{i}", a.parameters, "Running") for i, a in enumerate(alg.suggest(exp, [], 5))]
    more = alg.suggest(exp, running, 5)
    keys = [tuple(sorted(t.parameters.items())) for t in running] + [tuple(sorted(a.parameters.items())) for a in more]
    assert len(keys) == len(set(keys)) == 10


@pytest.mark.parametrize("name", POINT_SEARCHES)
def test_a_finite_space_is_exhausted_not_repeated(name):
    # cmaes counts only int and double parameters (as Katib's goptuna does)
    a = ({"name": "a", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "3"}} if name == "cmaes"
         else {"name": "a", "parameterType": "discrete", "feasibleSpace": {"list": ["1", "2", "3"]}})
    params = [a, {"name": "b", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "2"}}]
    exp = exp_for(name, params)
    alg = get_algorithm(name)
    first = alg.suggest(exp, [], 4)
    views = [TrialView(f"t{i}", a.parameters, "Succeeded", float(i)) for i, a in enumerate(first)]
    rest = alg.suggest(exp, views, 5)
    points = {(a.parameters["a"], a.parameters["b"]) for a in first + rest}
    assert len(rest) == 2 and len(points) == 6
    done_views = views + [TrialView(f"r{i}", a.parameters, "Succeeded", 0.0) for i, a in enumerate(rest)]
    assert alg.exhausted(exp, done_views) and not alg.exhausted(exp, views)


@pytest.mark.parametrize("name", PARAMETER_SEARCHES)
def test_same_history_same_proposals_after_a_restart(name):
    exp = exp_for(name, params_for(name))
    history = [TrialView("t0", a.parameters, "Succeeded", 0.5) for a in get_algorithm(name).suggest(exp, [], 3)]
    # A new instance (a restarted process) given the same stored trials proposes the same.
    a = get_algorithm(name).suggest(exp, history, 4)
    b = get_algorithm(name).suggest(exp, history, 4)
    assert [x.parameters for x in a] == [x.parameters for x in b]


# Katib's services for these ignore a setting they do not know (tests/katib_conformance).
IGNORE_UNKNOWN = {"cmaes", "sobol", "hyperband", "pbt", "darts"}


@pytest.mark.parametrize("name", sorted(algorithm_names()))
def test_unknown_setting_is_refused_by_name_or_ignored_as_katib_does(name):
    doc = experiment(algorithm={"algorithmName": name, "algorithmSettings": [{"name": "bogus", "value": "1"}]},
                     parameters=[{"name": "x", "parameterType": "double", "feasibleSpace": {"min": "0.1", "max": "0.9", "step": "0.1"}}])
    from katib.errors import ValidationError

    assert get_algorithm(name).ignores_unknown_settings is (name in IGNORE_UNKNOWN)
    try:
        admit(doc)
        errors = []
    except ValidationError as exc:
        errors = exc.errors
    refused = any(str(e).startswith(f"spec.algorithm.algorithmSettings[0].name: unknown setting 'bogus' for algorithm {name}")
                  for e in errors)
    assert refused is (name not in IGNORE_UNKNOWN)


def test_random_honours_distributions():
    exp = exp_for("random", ALL_TYPES)
    draws = get_algorithm("random").suggest(exp, [], 2000)
    d = [float(a.parameters["d"]) for a in draws]
    # logUniform over [0.001, 0.1]: the median is the geometric mean 0.01, not 0.05.
    assert 0.007 < statistics.median(d) < 0.014
    n = [float(a.parameters["n"]) for a in draws]
    # normal with mu=0, sigma=(max-min)/6: about 68 % within one sigma.
    assert 0.6 < sum(abs(x) <= 1 / 3 for x in n) / len(n) < 0.76
    ln = [math.log(float(a.parameters["ln"])) for a in draws]
    assert abs(statistics.median(ln) - math.log(10)) < 0.2
    i = {a.parameters["i"] for a in draws}
    assert i == {"2", "5", "8", "11"}
    q = {a.parameters["q"] for a in draws}
    assert q == {"0.5", "1.0", "1.5", "2.0", "2.5"}
    li = [int(a.parameters["li"]) for a in draws]
    assert statistics.median(li) < 100 and min(li) >= 1 and max(li) <= 1024


def test_random_state_makes_runs_reproducible_and_none_does_not():
    exp = exp_for("random", ALL_TYPES)
    assert get_algorithm("random").suggest(exp, [], 3) == get_algorithm("random").suggest(exp, [], 3)
    unseeded = exp_for("random", ALL_TYPES, seed=None)
    assert get_algorithm("random").suggest(unseeded, [], 3) != get_algorithm("random").suggest(unseeded, [], 3)


def test_grid_enumerates_every_point_once_in_order():
    params = [{"name": "lr", "parameterType": "double", "feasibleSpace": {"min": "0.001", "max": "0.031", "step": "0.01"}},
              {"name": "n", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "2"}}]
    exp = exp_for("grid", params, seed=None)
    points = [a.parameters for a in get_algorithm("grid").suggest(exp, [], 100)]
    assert points[:3] == [{"lr": "0.001", "n": "1"}, {"lr": "0.001", "n": "2"}, {"lr": "0.011", "n": "1"}]
    assert len(points) == 8 and len({tuple(p.items()) for p in points}) == 8


def test_a_grid_is_walked_not_listed():
    """A grid's points were made as lists of strings, a dimension at a time, on every
    suggestion: one int parameter from 0 to 10⁹ (admitted in 18 ms, with maxTrialCount 1)
    took the server's memory. Now a suggestion costs what it proposes, the seeded order
    included, and the admission check counts the points."""
    import tracemalloc

    wide = [{"name": "x", "parameterType": "int", "feasibleSpace": {"min": "0", "max": "2000000"}},
            {"name": "lr", "parameterType": "double", "feasibleSpace": {"min": "0", "max": "1e11", "step": "0.1"}}]
    for seed in (None, "7"):
        exp = exp_for("grid", wide, seed=seed)
        tracemalloc.start()
        points = [a.parameters for a in get_algorithm("grid").suggest(exp, [], 2)]
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < 5_000_000, peak
        assert len(points) == 2 and points[0] != points[1]
    assert points == [{"x": "0", "lr": "0.0"}, {"x": "0", "lr": "0.1"}]  # past 10⁶ points: in order


def test_grid_points_in_a_seeded_order_are_each_point_once():
    params = [{"name": "a", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "4"}},
              {"name": "b", "parameterType": "categorical", "feasibleSpace": {"list": ["p", "q", "r"]}}]
    exp = exp_for("grid", params, seed="5")
    points = [(a.parameters["a"], a.parameters["b"]) for a in get_algorithm("grid").suggest(exp, [], 100)]
    assert sorted(points) == [(str(a), b) for a in range(1, 5) for b in "pqr"] and points != sorted(points)


def test_grid_needs_a_step_for_doubles():
    from katib.errors import ValidationError

    with pytest.raises(ValidationError, match="step: is required for double parameters with the grid algorithm"):
        admit(experiment(algorithm={"algorithmName": "grid"}))


def test_grid_refuses_more_trials_than_points():
    """As Katib's optuna service: maxTrialCount above the grid's points is an error."""
    from katib.errors import ValidationError

    params = [{"name": "x", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "3"}}]
    with pytest.raises(ValidationError, match=r"spec.maxTrialCount: must be at most the 3 points of the grid \(got 4\)"):
        admit(experiment(algorithm={"algorithmName": "grid"}, parameters=params, maxTrialCount=4, parallelTrialCount=1))
    admit(experiment(algorithm={"algorithmName": "grid"}, parameters=params, maxTrialCount=3, parallelTrialCount=1))
    # counted, not listed: 10¹² points of a double, and Katib's count of a double's grid
    from suggestion._grid import katib_grid_size

    huge = [{"name": "x", "parameterType": "double", "feasibleSpace": {"min": "0", "max": "1e11", "step": "0.1"}},
            {"name": "n", "parameterType": "int", "feasibleSpace": {"min": "0", "max": str(2**62), "step": "2"}}]
    assert katib_grid_size(exp_for("grid", huge)) == 1_000_000_000_001 * (2**61 + 1)
    third = [{"name": "x", "parameterType": "double", "feasibleSpace": {"min": "0", "max": "1", "step": "0.3"}}]
    with pytest.raises(ValidationError, match=r"must be at most the 4 points of the grid \(got 5\)"):
        admit(experiment(algorithm={"algorithmName": "grid"}, parameters=third, maxTrialCount=5, parallelTrialCount=1))


def test_a_grid_counted_without_numpy_counts_as_numpy_does(monkeypatch):
    """Past 10⁶ points the count is arithmetic: it must be np.arange's (Katib's), which fills
    start + i·((start + step) − start); with the step itself, min 0.1, max 1.5, step 1e-6
    counted 1,400,001 where Katib counts 1,400,000."""
    import numpy as np

    import suggestion._grid as grid

    monkeypatch.setattr(grid, "EXACT_ARANGE", 0)
    rng = np.random.default_rng(0)
    cases = [(0.1, 1.5, 1e-6), (0.0, 1.0, 0.1), (0.001, 0.031, 0.01), (-3.3, 7.7, 0.3)]
    cases += [(float(lo), float(lo + span), float(span / k)) for lo, span, k in
              zip(rng.uniform(-5, 5, 200).round(3), rng.uniform(0.1, 9, 200).round(2), rng.integers(3, 5000, 200),
                  strict=True)]
    for lo, hi, step in cases:
        values = np.arange(lo, hi + step, step)
        assert grid._arange_size(lo, hi, step) == len(values) - int(len(values) > 0 and values[-1] > hi), (lo, hi, step)
