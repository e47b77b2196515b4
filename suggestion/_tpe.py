"""TPE and multivariate TPE: Optuna's ``TPESampler``."""

from __future__ import annotations

import math
from typing import Any

from ._base import Setting, integer, number
from ._optuna import OptunaAlgorithm

TPE_SETTINGS = {
    "random_state": Setting(integer(0)),
    "n_startup_trials": Setting(integer(0), 10),
    "n_ei_candidates": Setting(integer(1), 24),
    # hyperopt's names: the fraction of trials counted as good, and the prior's weight
    "gamma": Setting(number(0, 1, low_open=True)),
    "prior_weight": Setting(number(0, low_open=True)),
}


class TPE(OptunaAlgorithm):
    """Tree-structured Parzen Estimator (independent per parameter).

    Settings: ``random_state``, ``n_startup_trials`` (random trials first, default 10),
    ``n_ei_candidates`` (24), and hyperopt's ``gamma`` (fraction of trials taken as good;
    Optuna's default rule when unset) and ``prior_weight`` (Optuna's default when unset). Pending trials count as
    "constant liars", so parallel proposals spread out.
    """

    name = "tpe"
    multi_objective = True
    settings = TPE_SETTINGS
    multivariate = False

    def make_sampler(self, settings: dict[str, Any], seed: int | None, n_params: int) -> Any:
        from optuna.samplers import TPESampler

        kwargs: dict[str, Any] = {}
        if settings["gamma"] is not None:
            g = settings["gamma"]
            kwargs["gamma"] = lambda n: min(math.ceil(g * n), 25)
        if settings["prior_weight"] is not None:
            kwargs["prior_weight"] = settings["prior_weight"]
        # Optuna 5 defaults to the multivariate TPE; Katib's tpe is the independent one.
        if self.multivariate:
            kwargs.update(multivariate=True, group=True)
        else:
            kwargs["multivariate"] = False
        return TPESampler(
            n_startup_trials=settings["n_startup_trials"], n_ei_candidates=settings["n_ei_candidates"],
            seed=seed, constant_liar=True, **kwargs,
        )


class MultivariateTPE(TPE):
    """TPE modelling the parameters jointly (Optuna's ``multivariate=True``)."""

    name = "multivariate-tpe"
    multivariate = True
