"""The Optuna-backed algorithms and Sobol: their settings, and that they learn."""

from __future__ import annotations

import math

import pytest

from katib.controller import admit
from katib.errors import ValidationError
from suggestion import TrialView, get_algorithm
from tests.conftest import experiment

TWO = [{"name": "x", "parameterType": "double", "feasibleSpace": {"min": "-5", "max": "5"}},
       {"name": "y", "parameterType": "double", "feasibleSpace": {"min": "-5", "max": "5"}}]


def doc_for(name: str, settings: list[dict], params=TWO):
    doc = experiment(algorithm={"algorithmName": name, "algorithmSettings": settings}, parameters=params,
                     maxTrialCount=100, parallelTrialCount=4)
    doc["spec"]["trialTemplate"]["trialParameters"] = [{"name": p["name"], "reference": p["name"]} for p in params]
    doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]["command"] = [
        "echo", *[f"${{trialParameters.{p['name']}}}" for p in params]]
    return doc


@pytest.mark.parametrize(
    ("name", "setting", "value", "message"),
    [
        ("tpe", "n_startup_trials", "-1", "n_startup_trials must be >= 0 (got -1)"),
        ("tpe", "n_ei_candidates", "0", "n_ei_candidates must be >= 1 (got 0)"),
        ("tpe", "gamma", "1.5", "gamma must be < 1 (got 1.5)"),
        ("multivariate-tpe", "prior_weight", "0", "prior_weight must be > 0 (got 0)"),
        ("cmaes", "restart_strategy", "sometimes", "restart_strategy must be one of ipop, bipop, none (got 'sometimes')"),
        ("cmaes", "sigma", "abc", "sigma must be a number (got 'abc')"),
        ("bayesianoptimization", "base_estimator", "XGB", "base_estimator must be one of GP, RF, ET, GBRT (got 'XGB')"),
        ("bayesianoptimization", "acq_func", "UCB", "acq_func must be one of gp_hedge, LCB, EI, PI, EIps, PIps (got 'UCB')"),
        ("bayesianoptimization", "acq_optimizer", "adam", "acq_optimizer must be one of auto, sampling, lbfgs (got 'adam')"),
        ("bayesianoptimization", "n_initial_points", "x", "n_initial_points must be an integer (got 'x')"),
    ],
)
def test_settings_are_checked_by_name(name, setting, value, message):
    with pytest.raises(ValidationError) as info:
        admit(doc_for(name, [{"name": setting, "value": value}]))
    assert any(str(e) == f"spec.algorithm.algorithmSettings[0].value: {message}" or message in str(e)
               for e in info.value.errors), info.value.errors


def test_katib_defaults_are_accepted():
    admit(doc_for("bayesianoptimization", [{"name": "base_estimator", "value": "GP"}, {"name": "n_initial_points", "value": "10"},
                                           {"name": "acq_func", "value": "gp_hedge"}, {"name": "acq_optimizer", "value": "auto"},
                                           {"name": "random_state", "value": "10"}]))
    admit(doc_for("tpe", [{"name": "n_startup_trials", "value": "5"}, {"name": "n_ei_candidates", "value": "24"},
                          {"name": "random_state", "value": "1"}]))
    admit(doc_for("cmaes", [{"name": "restart_strategy", "value": "ipop"}, {"name": "sigma", "value": "0.2"}]))


def test_cmaes_needs_two_numeric_parameters():
    one = [TWO[0], {"name": "c", "parameterType": "categorical", "feasibleSpace": {"list": ["a", "b"]}}]
    with pytest.raises(ValidationError, match="cmaes needs at least 2 int or double parameters"):
        admit(doc_for("cmaes", [], one))


def sphere(p: dict[str, str]) -> float:
    return float(p["x"]) ** 2 + float(p["y"]) ** 2


@pytest.mark.parametrize("name", ["tpe", "multivariate-tpe", "cmaes", "bayesianoptimization"])
def test_model_based_algorithms_learn(name):
    """On a sphere, the last proposals after 40 trials beat random search's typical value."""
    settings = [{"name": "random_state", "value": "1"}]
    if name == "bayesianoptimization":
        settings.append({"name": "n_initial_points", "value": "8"})
    exp = admit(doc_for(name, settings))
    alg = get_algorithm(name)
    history: list[TrialView] = []
    while len(history) < 40:
        for a in alg.suggest(exp, history, 4):
            history.append(TrialView(a.name or f"t{len(history)}", a.parameters, "Succeeded", sphere(a.parameters)))
    late = sorted(t.objective for t in history[-12:])
    # Uniform random points on [-5, 5]^2 have a median sphere value near 16.
    assert late[len(late) // 2] < 10 and late[0] < 2, late


@pytest.mark.parametrize(("estimator", "acquisition", "optimizer"),
                         [("RF", "LCB", "auto"), ("ET", "EI", "auto"), ("GBRT", "PI", "auto"), ("GP", "LCB", "sampling")])
def test_bayesianoptimization_on_scikit_learn_learns(estimator, acquisition, optimizer):
    """Katib's (skopt's) surrogates and acquisitions beyond Optuna's GP with EI, on
    scikit-learn: after 6 random trials, the model finds better points on a sphere."""
    settings = {"base_estimator": estimator, "acq_func": acquisition, "acq_optimizer": optimizer,
                "n_initial_points": "6", "random_state": "1"}
    exp = admit(doc_for("bayesianoptimization", [{"name": k, "value": v} for k, v in settings.items()]))
    alg = get_algorithm("bayesianoptimization")
    history: list[TrialView] = []
    while len(history) < 24:
        batch = alg.suggest(exp, history, 3)
        assert len(batch) == 3 and len({tuple(a.parameters.items()) for a in batch}) == 3  # parallel points differ
        history += [TrialView(f"t{len(history)}", a.parameters, "Succeeded", sphere(a.parameters)) for a in batch]
    # The model's points gather near the optimum: uniform points on [-5, 5]^2 fall below 8
    # one time in four, so the median of 12 of them is below 8 about one time in 70. (The
    # best value alone says little here: seed 1's six random points hold a 0.68 already, and
    # which forest the seed grows changes between scikit-learn releases.)
    late = sorted(t.objective for t in history[-12:])
    assert late[len(late) // 2] < 8, late
    # The same history gives the same proposals (a restarted process carries on alike).
    assert ([a.parameters for a in alg.suggest(exp, history, 2)]
            == [a.parameters for a in get_algorithm("bayesianoptimization").suggest(exp, history, 2)])


def test_sobol_fills_the_space_evenly():
    exp = admit(doc_for("sobol", []))
    points = [(float(a.parameters["x"]), float(a.parameters["y"])) for a in get_algorithm("sobol").suggest(exp, [], 64)]
    quadrants = [sum(1 for x, y in points if (x > 0) == qx and (y > 0) == qy) for qx in (True, False) for qy in (True, False)]
    assert all(14 <= q <= 18 for q in quadrants), quadrants
    # The next call continues the sequence instead of repeating it.
    history = [TrialView(f"t{i}", {"x": str(x), "y": str(y)}, "Running") for i, (x, y) in enumerate(points)]
    more = get_algorithm("sobol").suggest(exp, history, 4)
    assert not {(float(a.parameters["x"]), float(a.parameters["y"])) for a in more} & set(points)


def test_optuna_adapter_honours_a_log_prior():
    params = [{"name": "lr", "parameterType": "double", "feasibleSpace": {"min": "0.0001", "max": "1", "distribution": "logUniform"}},
              TWO[1]]
    exp = admit(doc_for("tpe", [{"name": "random_state", "value": "2"}, {"name": "n_startup_trials", "value": "200"}], params))
    lrs = sorted(float(a.parameters["lr"]) for a in get_algorithm("tpe").suggest(exp, [], 200))
    # Log-uniform over four decades: the median is near 0.01, a uniform draw's would be 0.5.
    assert 0.003 < lrs[100] < 0.03
    assert math.isclose(min(lrs), 0.0001, rel_tol=2) and max(lrs) <= 1


def test_tpe_is_optunas_default_multivariate_tpe_and_gamma_splits_as_hyperopt():
    """``tpe`` models the parameters jointly (Optuna 5's default TPE; the independent one
    trailed it on 18 of 24 BBOB functions), ``multivariate-tpe`` groups them too; Katib's
    ``gamma`` (hyperopt's) takes ceil(gamma * sqrt(n)) trials as good, at most 25."""
    tpe = get_algorithm("tpe")
    exp = admit(doc_for("tpe", [{"name": "gamma", "value": "0.25"}]))
    sampler = tpe.make_sampler(tpe.parsed_settings(exp), 1, 2)  # type: ignore[attr-defined]
    assert sampler._multivariate and not sampler._group
    assert [sampler._gamma(n) for n in (4, 16, 100, 10_000, 100_000)] == [1, 1, 3, 25, 25]
    mv = get_algorithm("multivariate-tpe")
    grouped = mv.make_sampler(mv.parsed_settings(admit(doc_for("multivariate-tpe", []))), 1, 2)  # type: ignore[attr-defined]
    assert grouped._multivariate and grouped._group


def test_tpe_keeps_one_sampler_and_draws_as_a_fresh_one():
    """One TPE sampler serves every call (its search-space cache grows with the history;
    a new sampler per call recomputed it over every trial: 3x Optuna's time at 5,000
    trials), reseeded so each call proposes what a fresh instance proposes."""
    exp = admit(doc_for("tpe", [{"name": "random_state", "value": "5"}, {"name": "n_startup_trials", "value": "3"}]))
    alg = get_algorithm("tpe")
    history: list[TrialView] = []
    samplers = []
    for _ in range(3):
        batch = alg.suggest(exp, history, 2)
        samplers.append(alg._cache[1].sampler)  # type: ignore[attr-defined]
        fresh = get_algorithm("tpe").suggest(exp, history, 2)
        assert [a.parameters for a in batch] == [a.parameters for a in fresh]
        history += [TrialView(a.name or "", a.parameters, "Succeeded", sphere(a.parameters)) for a in batch]
    assert all(s is samplers[0] for s in samplers)


def test_a_scikit_learn_suggestion_has_a_bounded_cost(monkeypatch):
    """Every proposal of a batch refitted the surrogate on the whole history and the batch
    so far: ask?count=1000 after one result took 8 minutes of CPU, 2,000 results a GP fit
    146 s. Now a fit sees at most MAX_FIT points (the best and the latest), at most
    MAX_REFITS times a call; the rest of a batch follows the last fit's ranking."""
    import numpy as np

    import suggestion._skbo as skbo

    sizes: list[int] = []

    def fake(estimator, seed, xs, ys, candidates, memo):
        sizes.append(len(xs))
        return np.zeros(len(candidates)), np.ones(len(candidates))

    monkeypatch.setattr(skbo, "_fit_predict", fake)
    settings = {"base_estimator": "GP", "acq_func": "LCB", "n_initial_points": "0", "random_state": "1"}
    exp = admit(doc_for("bayesianoptimization", [{"name": k, "value": v} for k, v in settings.items()]))
    rng = np.random.default_rng(0)
    history = [TrialView(f"t{i}", {"x": str(rng.uniform(-5, 5)), "y": str(rng.uniform(-5, 5))}, "Succeeded",
                         float(rng.random())) for i in range(2000)]
    batch = get_algorithm("bayesianoptimization").suggest(exp, history, 300)
    assert len(batch) == 300 and len({tuple(a.parameters.items()) for a in batch}) == 300
    assert len(sizes) == skbo.MAX_REFITS and max(sizes) <= skbo.MAX_FIT, (len(sizes), max(sizes))
    # the window holds the best results
    kept_x, kept_y = skbo._window(list(range(2000)), [t.objective for t in history], 250)
    assert min(kept_y) == min(t.objective for t in history) and len(kept_x) == 500 and 1999 in kept_x
