"""TPE and multivariate TPE: Optuna's ``TPESampler``."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from ._base import Setting, integer, number, seed
from ._optuna import OptunaAlgorithm
from ._tpe_sampler import sampler_class


def _open_unit(text: str) -> float:
    value = number(0, None, low_open=True)(text)
    if value >= 1:
        raise ValueError(f"must be < 1 (got {text})")
    return value


#: Most expected-improvement candidates a suggestion draws (4,000,000 took 20 s and 680 MB).
MAX_EI_CANDIDATES = 10_000

MULTIVARIATE_TPE_SETTINGS = {
    # Optuna's (Katib's optuna service)
    "random_state": Setting(seed),
    "n_startup_trials": Setting(integer(0), 10),
    # each candidate is drawn and scored per parameter on every suggestion: bounded
    "n_ei_candidates": Setting(integer(1, MAX_EI_CANDIDATES), 24),
    # hyperopt's (Katib's hyperopt service): the fraction of trials counted as good, in
    # (0, 1), and the prior's weight
    "gamma": Setting(_open_unit),
    "prior_weight": Setting(number(0, low_open=True)),
}
# Katib's stock tpe is hyperopt's, which spells the candidates n_EI_candidates.
TPE_SETTINGS = {**MULTIVARIATE_TPE_SETTINGS, "n_EI_candidates": Setting(integer(1, MAX_EI_CANDIDATES))}


def hyperopt_gamma(gamma: float) -> Callable[[int], int]:
    """hyperopt's split (Katib's stock ``tpe``): of ``n`` trials, the best
    ``ceil(gamma * sqrt(n))`` are the good ones, at most 25 (hyperopt's linear_forgetting)."""

    def n_below(n: int) -> int:
        return min(math.ceil(gamma * math.sqrt(n)), 25)

    return n_below


class TPE(OptunaAlgorithm):
    """Tree-structured Parzen Estimator: Optuna's ``TPESampler`` as Optuna ships it.

    Optuna 5's default TPE models the parameters jointly (``multivariate``), and so does
    ours: the independent, per-parameter TPE of hyperopt and of Optuna 4 trails it
    on 18 of 24 BBOB functions (docs/benchmarks.md). Settings, each meaning what it means
    in Katib: ``random_state``; ``n_startup_trials`` (random trials first, default 10);
    ``n_ei_candidates`` (points drawn from the good density and ranked by expected
    improvement; hyperopt's spelling ``n_EI_candidates`` too); hyperopt's ``gamma``: the
    good trials are ``ceil(gamma * sqrt(n))`` of ``n``, at most 25, as hyperopt splits them
    (Optuna's rule, ``ceil(0.1 n)`` up to 25, when unset); and ``prior_weight`` (Optuna's
    default when unset). Pending trials count as "constant liars", so parallel proposals
    spread out.
    """

    name = "tpe"
    multi_objective = True
    settings = TPE_SETTINGS
    grouped = False

    def reseed(self, sampler: Any, seed: int | None) -> bool:
        # TPESampler's generator and its random sampler's (for the startup trials), as
        # TPESampler(seed=seed) seeds them.
        sampler._rng.rng.seed(seed)
        sampler._random_sampler._rng.rng.seed(seed)
        return True

    def make_sampler(self, settings: dict[str, Any], seed: int | None, n_params: int) -> Any:
        TPESampler = sampler_class()  # noqa: N806

        kwargs: dict[str, Any] = {}
        if settings["gamma"] is not None:
            kwargs["gamma"] = hyperopt_gamma(settings["gamma"])
        if settings["prior_weight"] is not None:
            kwargs["prior_weight"] = settings["prior_weight"]
        # Optuna's default TPE is multivariate; multivariate-tpe also groups the parameters
        # that appear together (Katib's optuna service's setting).
        kwargs.update(multivariate=True, group=self.grouped)
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
    grouped = True
