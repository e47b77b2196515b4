"""Optuna's ``GPSampler`` with its kernel refitted on a schedule (issue 17).

Optuna refits the GP's kernel hyperparameters (ARD length scales, scale, noise) by
maximum a posteriori at every suggestion: at 1,000 trials that fit is ~90% of a
suggestion (each L-BFGS step a Cholesky factorisation of the whole history and its
gradient). Here the fit is warm-started from the last one and redone only when it is
due (``refit_due``): at every new completed trial up to ``REFIT_EVERY_TRIAL_UP_TO``
completed trials, then once the history has grown by ``REFIT_GROWTH`` (5%: every 50
trials at 1,000). Between fits the GP is conditioned on every completed trial with the
last fitted hyperparameters (one Cholesky factorisation), and the acquisition (log EI,
q-log EI with running trials) is Optuna's, optimised as Optuna does.

The fitted hyperparameters and the number of completed trials they were fitted on live
in the algorithm state (``state["gp"]``, JSON floats, which round-trip exactly), so a
proposal is a function of the history and that state: a restarted controller carries on
from the last fit (its proposals differ from an uninterrupted run's only by the rounding
of the parameters' strings it rebuilds the trials from). Several objectives and
constraints are left to Optuna's own code, refitted from scratch at each call as before.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import cache
from typing import Any

import numpy as np
from optuna.samplers import GPSampler
from optuna.study import StudyDirection

from ._base import best_and_latest

REFIT_EVERY_TRIAL_UP_TO = 200
MAX_HISTORY = 2000  # past it, the best 1,000 and the latest 1,000 completed trials (``window``)
REFIT_GROWTH = 0.05
SCREEN = 2048  # Optuna's random points screened before its local searches of the acquisition
SCREEN_FLOOR = 512


def window(completed_trials: list[Any], sign: float) -> list[Any]:
    """The trials the GP learns from: all of them up to ``MAX_HISTORY``, then the best half
    and the latest half (in their order). Its cost is cubic in them: unbounded, a history of
    tens of thousands of trials made one suggestion minutes of a server's CPU."""
    if len(completed_trials) <= MAX_HISTORY:
        return completed_trials
    keep = best_and_latest([-sign * t.values[0] for t in completed_trials], MAX_HISTORY // 2)
    return [completed_trials[i] for i in keep]


def refit_due(completed: int, fitted_on: int | None) -> bool:
    """Whether the kernel is refitted for a history of ``completed`` trials, when it was
    last fitted on ``fitted_on`` (None: never)."""
    if fitted_on is None:
        return True
    if completed <= REFIT_EVERY_TRIAL_UP_TO:
        return completed != fitted_on
    return abs(completed - fitted_on) >= math.ceil(REFIT_GROWTH * completed)


def screened(completed: int) -> int:
    """How many random points the acquisition's optimisation screens, for a history of
    ``completed`` trials: Optuna's 2,048 up to ``REFIT_EVERY_TRIAL_UP_TO`` trials, then
    fewer as the history grows (the screen's cost is the points times the history), never
    under ``SCREEN_FLOOR``. The 10 local searches from the best of them and from the
    incumbent are kept. At 1,000 trials the screen was ~70% of a call without a fit."""
    if completed <= REFIT_EVERY_TRIAL_UP_TO:
        return SCREEN
    return max(SCREEN_FLOOR, round(SCREEN * REFIT_EVERY_TRIAL_UP_TO / completed))


@cache
def _internals_present() -> bool:
    """Whether this Optuna has the ``optuna._gp`` internals the schedule drives (tested on
    Optuna 5.0); without them every call takes Optuna's own path, refitted from scratch."""
    try:
        import optuna._gp.acqf as acqf_module
        import optuna._gp.gp as gp
        import optuna._gp.search_space as gp_search_space
        from optuna.samplers._gp import sampler
    except ImportError:
        return False
    return all(hasattr(m, n) for m, n in ((acqf_module, "qLogEI"), (acqf_module, "LogEI"), (gp, "GPRegressor"),
                                           (gp_search_space, "SearchSpace"), (sampler, "_standardize_values"),
                                           (sampler, "_get_params"), (sampler, "_MAX_QMC_SEED_VALUE")))


class ScheduledGPSampler(GPSampler):
    """``GPSampler`` whose single-objective, unconstrained path refits the kernel on the
    ``refit_due`` schedule; ``state`` (the algorithm state) holds the last fit under
    ``"gp"``, set anew at each fit."""

    def __init__(self, *, seed: int | None, n_startup_trials: int, independent_sampler: Any) -> None:
        super().__init__(seed=seed, n_startup_trials=n_startup_trials, independent_sampler=independent_sampler)
        self.state: dict[str, Any] = {}
        self.fits = 0  # kernel fits run by this sampler (for tests and benchmarks)

    def _sample_relative_impl(self, study: Any, completed_trials: list[Any], running_trials: list[Any],
                              search_space: dict[str, Any]) -> dict[str, Any]:
        from optuna.study._constrained_optimization import _is_constrained_optimization

        if len(study.directions) != 1 or _is_constrained_optimization(completed_trials) or not _internals_present():
            # Optuna's own path, from a cold start as a new sampler would fit it.
            self._gprs_cache_list = self._constraints_gprs_cache_list = None
            self.fits += 1
            return super()._sample_relative_impl(study, completed_trials, running_trials, search_space)
        return self._single_objective(study, completed_trials, running_trials, search_space)

    def _single_objective(self, study: Any, completed_trials: list[Any], running_trials: list[Any],
                          search_space: dict[str, Any]) -> dict[str, Any]:
        import optuna._gp.acqf as acqf_module
        import optuna._gp.gp as gp
        import optuna._gp.search_space as gp_search_space
        import torch
        from optuna.samplers._gp.sampler import (
            _MAX_QMC_SEED_VALUE,
            _get_params,
            _standardize_values,
        )

        space = gp_search_space.SearchSpace(search_space)
        sign = -1.0 if study.directions[0] == StudyDirection.MINIMIZE else 1.0
        total = len(completed_trials)
        completed_trials = window(completed_trials, sign)
        x = space.get_normalized_params(completed_trials)
        y = _standardize_values(sign * np.array([t.values for t in completed_trials]))[0][:, 0]
        gpr = self._kernel(gp, torch, x, y, space.is_categorical, total)
        if running_trials:
            x_running = space.get_normalized_params(running_trials, [_get_params(t) for t in running_trials])
            acqf: Any = acqf_module.qLogEI(
                gpr=gpr, search_space=space, threshold=y.max(), n_qmc_samples=self._n_qmc_samples_qei,
                qmc_seed=self._rng.rng.randint(_MAX_QMC_SEED_VALUE), normalized_params_of_running_trials=x_running,
            )
        else:
            acqf = acqf_module.LogEI(gpr=gpr, search_space=space, threshold=y.max())
        best = x[np.argmax(y), np.newaxis]
        self._n_preliminary_samples = screened(len(x))
        return space.get_unnormalized_param(self._optimize_acqf(acqf, best))

    def _kernel(self, gp: Any, torch: Any, x: np.ndarray, y: np.ndarray, is_categorical: np.ndarray,
                completed: int) -> Any:
        """The GP on ``(x, y)``: refitted when due for ``completed`` trials (warm-started
        from the last fit), else conditioned on them with the last fit's hyperparameters."""
        last = self.state.get("gp", {})
        kept: Sequence[float] | None = last.get("kernel")
        if kept is not None and len(kept) != x.shape[1] + 2:
            kept = None  # another search space
        fitted_on = last.get("fitted_on") if kept is not None else None

        def regressor(params: Sequence[float]) -> Any:
            p = torch.tensor(list(params), dtype=torch.float64)
            return gp.GPRegressor(
                is_categorical=torch.from_numpy(is_categorical), X_train=torch.from_numpy(x),
                y_train=torch.from_numpy(y), inverse_squared_lengthscales=p[:-2], kernel_scale=p[-2], noise_var=p[-1],
            )

        if kept is not None and not refit_due(completed, fitted_on):
            gpr = regressor(kept)
            gpr._cache_matrix()
            return gpr
        gpr = gp.fit_kernel_params(
            X=x, Y=y, is_categorical=is_categorical, log_prior=self._log_prior, minimum_noise=self._minimum_noise,
            gpr_cache=None if kept is None else regressor(kept), deterministic_objective=self._deterministic,
        )
        self.fits += 1
        params = [*gpr.inverse_squared_lengthscales.tolist(), float(gpr.kernel_scale), float(gpr.noise_var)]
        self.state["gp"] = {"kernel": params, "fitted_on": completed}
        return gpr
