"""The TPE keeps finished trials' internal representation instead of rebuilding it per
proposal; what it proposes is exactly what Optuna's own TPESampler proposes."""

from __future__ import annotations

import numpy as np
import optuna
import pytest
from optuna.samplers import TPESampler

from suggestion._tpe_sampler import sampler_class

DISTS = {
    "x": optuna.distributions.FloatDistribution(-5, 5),
    "lr": optuna.distributions.FloatDistribution(1e-4, 1, log=True),
    "n": optuna.distributions.IntDistribution(1, 64),
    "opt": optuna.distributions.CategoricalDistribution(["sgd", "adam", "rmsprop"]),
}


# As katib's adapter gives them to Optuna: numbers on the unit interval, and categories.
UNIT = {
    "x": optuna.distributions.FloatDistribution(0, 1),
    "lr": optuna.distributions.FloatDistribution(0, 1),
    "n": optuna.distributions.FloatDistribution(0, 1),
    "opt": optuna.distributions.CategoricalDistribution(["sgd", "adam", "rmsprop"]),
}


def _loss(p: dict) -> float:
    if p["lr"] <= 1:  # UNIT
        return (p["x"] - 0.3) ** 2 + (p["lr"] - 0.7) ** 2 + abs(p["n"] - 0.5) + (p["opt"] == "sgd")
    return p["x"] ** 2 + np.log10(p["lr"]) ** 2 + (p["n"] - 32) ** 2 / 100 + (p["opt"] == "sgd")


@pytest.mark.parametrize("kwargs", [{}, {"multivariate": True, "group": True}, {"multivariate": False}])
def test_the_same_proposals_as_optunas_tpe(kwargs):
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    runs = []
    for cls in (TPESampler, sampler_class()):
        sampler = cls(seed=5, n_startup_trials=5, constant_liar=True, **kwargs)
        study = optuna.create_study(sampler=sampler)
        proposed, running = [], []
        for step in range(40):
            trial = study.ask(DISTS)
            proposed.append(trial.params)
            running.append(trial)
            if step % 3 != 2:  # some stay running for a while (constant liar), then finish
                for t in running:
                    study.tell(t, _loss(t.params)) if t.number % 7 else study.tell(t, state=optuna.trial.TrialState.FAIL)
                running = []
        runs.append(proposed)
    assert runs[0] == runs[1]


def _proposals(cls, *, steps: int, direction: str = "minimize", prune: bool = False, dists: dict = DISTS,
               **kwargs) -> list:
    sampler = cls(seed=3, n_startup_trials=5, constant_liar=True, **kwargs)
    study = optuna.create_study(sampler=sampler, direction=direction)
    proposed, running = [], []
    for step in range(steps):
        trial = study.ask(dists)
        proposed.append(trial.params)
        running.append(trial)
        if step % 4 == 3:
            continue  # some stay running for a while (constant liar)
        for t in running:
            loss = _loss(t.params)
            if prune and t.number % 5 == 1:
                t.report(loss, step=t.number % 3)
                study.tell(t, state=optuna.trial.TrialState.PRUNED)
            elif t.number % 11 == 4:
                study.tell(t, state=optuna.trial.TrialState.FAIL)
            else:
                study.tell(t, -loss if direction == "maximize" else loss)
        running = []
    return proposed


@pytest.mark.parametrize("case", [
    {"direction": "maximize"},  # the split sorts best first either way, ties in trial order
    {"gamma": lambda n: min(int(np.ceil(0.25 * np.sqrt(n))), 25)},  # Katib's hyperopt gamma
    {"constraints_func": lambda t: (t.params["x"] - 1.0, 0.5 - t.params["lr"])},  # infeasible ones split by score
    {"prune": True},  # pruned trials: Optuna's own split
    {"prior_weight": 2.0, "n_ei_candidates": 7},
    {"dists": UNIT},  # the quicker log-density (tpe_logpdf) runs on these
    {"dists": UNIT, "direction": "maximize", "n_ei_candidates": 50},
], ids=["maximize", "gamma", "constraints", "pruned", "settings", "unit", "unit-maximize"])
def test_the_same_proposals_past_the_weight_ramp(case):
    """70 proposals: past 25 trials Optuna weighs older trials less, so the order the
    history is kept in matters, as does every trial's side of the split."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    runs = [_proposals(cls, steps=70, **case) for cls in (TPESampler, sampler_class())]
    assert runs[0] == runs[1]


def test_several_objectives_go_through_optunas_split():
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    runs = []
    for cls in (TPESampler, sampler_class()):
        study = optuna.create_study(sampler=cls(seed=2, n_startup_trials=5), directions=["minimize", "maximize"])
        for _ in range(30):
            t = study.ask(DISTS)
            study.tell(t, (_loss(t.params), t.params["n"]))
        runs.append([t.params for t in study.trials])
    assert runs[0] == runs[1]


def test_finished_trials_are_converted_once(monkeypatch):
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    sampler = sampler_class()(seed=1, n_startup_trials=3)
    assert sampler.__class__ is not TPESampler, "this Optuna has no _get_internal_repr to keep"
    study = optuna.create_study(sampler=sampler)
    for _ in range(10):
        t = study.ask(DISTS)
        study.tell(t, _loss(t.params))
    calls = []
    real = sampler._get_params
    monkeypatch.setattr(sampler, "_get_params", lambda trial, st: calls.append(trial.number) or real(trial, st))
    for _ in range(3):
        t = study.ask(DISTS)
        study.tell(t, _loss(t.params))
    # Over the three proposals each trial's parameters are read once, when first seen
    # finished (the last of the ten, then the two new ones); the nine before were kept.
    # Optuna's own TPESampler reads all of them at every proposal.
    assert calls == [9, 10, 11]


def test_grouped_proposals_on_a_conditional_space():
    """``group=True`` with parameters that appear only in some trials: the groups, kept
    trial by trial, come out as Optuna recomputes them from every trial."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)

    def objective(trial: optuna.Trial) -> float:
        opt = trial.suggest_categorical("opt", ["sgd", "adam"])
        # from trial 30 on, "x" is gone and "y" joins: the groups {opt, x} split again
        x = trial.suggest_float("x", -5, 5) if trial.number < 30 else trial.suggest_float("y", -5, 5)
        if opt == "sgd":
            return x**2 + trial.suggest_float("momentum", 0, 1)
        return (x - 1) ** 2 + trial.suggest_int("layers", 1, 8) / 4

    runs = []
    for cls in (TPESampler, sampler_class()):
        study = optuna.create_study(sampler=cls(seed=4, n_startup_trials=5, multivariate=True, group=True))
        study.optimize(objective, n_trials=60)
        runs.append([t.params for t in study.trials])
    assert runs[0] == runs[1]


def test_the_log_density_is_optunas_bit_for_bit():
    """Random mixtures, with candidates outside a component's interval and an empty
    interval, as Optuna's ``np.select`` sorts them out."""
    from optuna.samplers._tpe.probability_distributions import (
        _BatchedCategoricalDistributions,
        _BatchedTruncNormDistributions,
        _MixtureOfProductDistribution,
    )

    from suggestion._tpe_logpdf import log_pdf

    rng = np.random.default_rng(0)
    for n_numeric, outside, degenerate in [(1, False, False), (3, False, False), (3, True, False), (6, True, False),
                                           (2, False, True)]:
        k = 300
        weights = rng.random(k)
        dists: list = [_BatchedCategoricalDistributions(rng.dirichlet(np.ones(4), size=k))]
        for _ in range(n_numeric):
            dists.append(_BatchedTruncNormDistributions(rng.random(k), rng.random(k) * 0.3 + 1e-3, 0.0, 1.0))
        if degenerate:  # an empty interval: nan
            dists.append(_BatchedTruncNormDistributions(np.zeros(k), np.ones(k), 0.5, 0.5))
        spread = (1.4, 0.2) if outside else (1.0, 0.0)  # candidates outside [0, 1]: -inf
        x = np.column_stack([rng.integers(0, 4, 24)] + [rng.random(24) * spread[0] - spread[1] for _ in dists[1:]])
        mixture = _MixtureOfProductDistribution(weights / weights.sum(), dists)
        with np.errstate(all="ignore"):
            ours, theirs = log_pdf(mixture, x), mixture.log_pdf(x)
        assert ours is not None
        assert np.array_equal(ours, theirs, equal_nan=True)
        assert np.isneginf(ours).any() == outside and np.isnan(ours).all() == degenerate
    stepped = _MixtureOfProductDistribution(np.ones(1), [_BatchedTruncNormDistributions(np.zeros(1), np.ones(1), 0.0, 1.0)] * 8)
    assert log_pdf(stepped, np.zeros((2, 8))) is None  # eight or more: numpy sums pairwise, Optuna's code runs
