"""Bayesian optimisation with a Gaussian process: Optuna's ``GPSampler``."""

from __future__ import annotations

import importlib.util
from typing import Any

from katib.errors import FieldError
from katib.spec import Experiment

from ._base import Setting, choice, integer
from ._optuna import OptunaAlgorithm

WHY = "katib's bayesianoptimization is a Gaussian process (Optuna's GPSampler) with log expected improvement"


class BayesianOptimization(OptunaAlgorithm):
    """Gaussian-process Bayesian optimisation (Matern-5/2 kernel, log expected improvement).

    Katib's settings: ``base_estimator`` (``GP``; the tree ensembles RF, ET and GBRT are
    refused), ``n_initial_points`` (random trials first, default 10), ``acq_func``
    (``gp_hedge``, Katib's default, and ``EI`` both mean log EI; LCB, PI, EIps and PIps are
    refused), ``acq_optimizer`` (``auto`` or ``lbfgs``: sampling then L-BFGS-B), and
    ``random_state``.
    """

    name = "bayesianoptimization"
    settings = {
        "base_estimator": Setting(choice("GP", rejected={k: WHY for k in ("RF", "ET", "GBRT")}), "GP"),
        "n_initial_points": Setting(integer(0), 10),
        "acq_func": Setting(choice("gp_hedge", "EI", rejected={k: WHY for k in ("LCB", "PI", "EIps", "PIps")}), "gp_hedge"),
        "acq_optimizer": Setting(choice("auto", "lbfgs", rejected={"sampling": WHY + ", optimised by sampling then L-BFGS-B"}), "auto"),
        "random_state": Setting(integer(0)),
    }

    def validate(self, experiment: Experiment) -> list[FieldError]:
        errors = super().validate(experiment)
        if importlib.util.find_spec("torch") is None:
            errors.append(FieldError(
                "spec.algorithm.algorithmName",
                "bayesianoptimization needs PyTorch (Optuna's GPSampler runs on it): pip install 'katib[gp]'",
            ))
        return errors

    def make_sampler(self, settings: dict[str, Any], seed: int | None, n_params: int) -> Any:
        from optuna.samplers import GPSampler, RandomSampler

        return GPSampler(
            seed=seed, n_startup_trials=settings["n_initial_points"],
            independent_sampler=RandomSampler(seed=seed),
        )
