"""The TPE keeps finished trials' internal representation instead of rebuilding it per
proposal; what it proposes is exactly what Optuna's own TPESampler proposes."""

from __future__ import annotations

import numpy as np
import optuna
import pytest
from optuna.samplers import TPESampler

from suggestion._tpe import _sampler_class

DISTS = {
    "x": optuna.distributions.FloatDistribution(-5, 5),
    "lr": optuna.distributions.FloatDistribution(1e-4, 1, log=True),
    "n": optuna.distributions.IntDistribution(1, 64),
    "opt": optuna.distributions.CategoricalDistribution(["sgd", "adam", "rmsprop"]),
}


def _loss(p: dict) -> float:
    return p["x"] ** 2 + np.log10(p["lr"]) ** 2 + (p["n"] - 32) ** 2 / 100 + (p["opt"] == "sgd")


@pytest.mark.parametrize("kwargs", [{}, {"multivariate": True, "group": True}, {"multivariate": False}])
def test_the_same_proposals_as_optunas_tpe(kwargs):
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    runs = []
    for cls in (TPESampler, _sampler_class()):
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


def test_finished_trials_are_converted_once(monkeypatch):
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    sampler = _sampler_class()(seed=1, n_startup_trials=3)
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
