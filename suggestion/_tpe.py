"""TPE and multivariate TPE: Optuna's ``TPESampler``."""

from __future__ import annotations

import math
from typing import Any

from ._base import Setting, integer, number
from ._optuna import OptunaAlgorithm


def _open_unit(text: str) -> float:
    value = number(0, 1, low_open=True)(text)
    if value >= 1:
        raise ValueError(f"must be < 1 (got {text})")
    return value


MULTIVARIATE_TPE_SETTINGS = {
    # Optuna's (Katib's optuna service)
    "random_state": Setting(integer(0)),
    "n_startup_trials": Setting(integer(0), 10),
    "n_ei_candidates": Setting(integer(1), 24),
    # hyperopt's (Katib's hyperopt service): the fraction of trials counted as good, in
    # (0, 1), and the prior's weight
    "gamma": Setting(_open_unit),
    "prior_weight": Setting(number(0, low_open=True)),
}
# Katib's stock tpe is hyperopt's, which spells the candidates n_EI_candidates.
TPE_SETTINGS = {**MULTIVARIATE_TPE_SETTINGS, "n_EI_candidates": Setting(integer(1))}


class TPE(OptunaAlgorithm):
    """Tree-structured Parzen Estimator (independent per parameter).

    Settings: ``random_state``, ``n_startup_trials`` (random trials first, default 10),
    ``n_ei_candidates`` (24; hyperopt's spelling ``n_EI_candidates`` too), and hyperopt's
    ``gamma`` (fraction of trials taken as good, in (0, 1); Optuna's default rule when
    unset) and ``prior_weight`` (Optuna's default when unset): Katib's stock ``tpe``
    (hyperopt) and its optuna service's settings both. Pending trials count as "constant
    liars", so parallel proposals spread out.
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
            n_startup_trials=settings["n_startup_trials"],
            n_ei_candidates=settings.get("n_EI_candidates") or settings["n_ei_candidates"],
            seed=seed, constant_liar=True, **kwargs,
        )


class MultivariateTPE(TPE):
    """TPE modelling the parameters jointly (Optuna's ``multivariate=True``); Katib's optuna
    service's settings, and hyperopt's ``gamma`` and ``prior_weight``."""

    name = "multivariate-tpe"
    settings = MULTIVARIATE_TPE_SETTINGS
    multivariate = True
