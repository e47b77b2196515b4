"""Bayesian optimisation on scikit-learn surrogates: the part of Katib's
``bayesianoptimization`` (scikit-optimize there) that Optuna's GP sampler does not cover —
the tree ensembles ``RF``, ``ET`` and ``GBRT`` as ``base_estimator``, the acquisitions
``LCB`` and ``PI`` (``EIps`` and ``PIps`` act as ``EI`` and ``PI``: no trial reports its
time), and ``acq_optimizer: sampling`` — rebuilt small, the way skopt did it.

Points live in the unit cube: each numeric parameter as its quantile under its
distribution, each categorical one one-hot. The objective is minimised (negated when
maximising). Until ``n_initial_points`` trials have a result, points are drawn at random;
then the surrogate is fitted to the finished trials, pending ones told the best value so
far (skopt's ``cl_min`` constant liar, so parallel proposals spread out), and the
acquisition is optimised over ``N_CANDIDATES`` random points of the space.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from ._base import ACTIVE_STATES, TrialView, best_and_latest
from ._space import SearchSpace

N_CANDIDATES = 5_000  # skopt samples 10 000
# Besides them, points near the best trials so far (SMAC's local search, in short): a
# piecewise-constant tree surrogate gives the random points no reason to close in.
N_INCUMBENTS, N_LOCAL, LOCAL_STEP = 5, 100, 0.05
# What one call may cost: the surrogate learns from at most MAX_FIT points (the best half
# and the most recent half of the history, and the MAX_LIARS latest liars), and is fitted at most
# MAX_REFITS times a call; further points of a large batch follow the last fit's ranking.
# Unbounded, ask?count=1000 after one result took 8 minutes of CPU, and 2,000 results a
# GP fit 146 s, on a server whose other requests share the threads.
MAX_FIT, MAX_LIARS, MAX_REFITS = 600, 100, 16
XI, KAPPA = 0.01, 1.96  # skopt's defaults for EI/PI and LCB
_LEARNED = ("Succeeded", "EarlyStopped")


def _encode(space: SearchSpace, params: dict[str, str]) -> list[float]:
    row: list[float] = []
    for d in space.dims:
        if d.categorical:
            row += [1.0 if params[d.name] == c else 0.0 for c in d.choices]
        else:
            row.append(d.to_unit(params[d.name]))
    return row


def _surrogate(estimator: str, seed: int | None, kernel: Any = None) -> Any:
    from sklearn.ensemble import (
        ExtraTreesRegressor,
        GradientBoostingRegressor,
        RandomForestRegressor,
    )
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

    # skopt's forests keep 3 trials a leaf; with a few dozen trials the best one's leaf
    # then averages it away and the model never closes in on it: one a leaf here.
    if estimator == "RF":
        return RandomForestRegressor(n_estimators=100, min_samples_leaf=1, random_state=seed)
    if estimator == "ET":
        return ExtraTreesRegressor(n_estimators=100, min_samples_leaf=1, random_state=seed)
    if estimator == "GBRT":  # skopt's quantile regressor: the 16th, 50th and 84th percentiles
        return [GradientBoostingRegressor(loss="quantile", alpha=q, n_estimators=30, random_state=seed)
                for q in (0.16, 0.5, 0.84)]
    if kernel is not None:  # the kernel fitted to the same trials: refitted with liars only
        return GaussianProcessRegressor(kernel, normalize_y=True, optimizer=None)
    kernel = ConstantKernel(1.0) * Matern(nu=2.5) + WhiteKernel(1e-5, noise_level_bounds=(1e-10, 1e-1))
    return GaussianProcessRegressor(kernel, normalize_y=True, n_restarts_optimizer=2, random_state=seed)


def _fit_predict(estimator: str, seed: int | None, x: np.ndarray, y: np.ndarray,
                 candidates: np.ndarray, memo: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """The surrogate's mean and standard deviation at ``candidates``; ``memo`` keeps the
    GP's fitted kernel between the fits of one call (they differ by liars only)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the GP's kernel fit warns of bounds it reaches
        return _fitted_predict(estimator, seed, x, y, candidates, memo)


def _fitted_predict(estimator: str, seed: int | None, x: np.ndarray, y: np.ndarray,
                    candidates: np.ndarray, memo: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    model = _surrogate(estimator, seed, memo.get("kernel"))
    if estimator == "GBRT":
        low, mid, high = (m.fit(x, y).predict(candidates) for m in model)
        return mid, np.maximum((high - low) / 2, 1e-12)
    model.fit(x, y)
    if estimator in ("RF", "ET"):
        # skopt's law of total variance: the trees' spread plus each leaf's own variance.
        leaves = [(tree.tree_, tree.apply(candidates.astype(np.float32))) for tree in model.estimators_]
        means = np.stack([t.value[leaf, 0, 0] for t, leaf in leaves])
        leaf_var = np.stack([t.impurity[leaf] for t, leaf in leaves])
        mean = means.mean(axis=0)
        var = (leaf_var + means**2).mean(axis=0) - mean**2
        return mean, np.sqrt(np.maximum(var, 1e-24))
    memo["kernel"] = model.kernel_
    mean, std = model.predict(candidates, return_std=True)
    return mean, np.maximum(std, 1e-12)


def _acquisition(name: str, mean: np.ndarray, std: np.ndarray, best: float) -> np.ndarray:
    """Higher is better, for a minimised objective (skopt's gaussian_ei/pi/lcb)."""
    from scipy.stats import norm

    if name == "LCB":
        return -(mean - KAPPA * std)
    z = (best - mean - XI) / std
    if name in ("PI", "PIps"):
        return norm.cdf(z)
    return (best - mean - XI) * norm.cdf(z) + std * norm.pdf(z)  # EI, EIps, gp_hedge


def propose(space: SearchSpace, trials: Sequence[TrialView], count: int, settings: dict[str, Any],
            maximize: bool, seed: int | None) -> list[dict[str, str]]:
    """Up to ``count`` new points (fewer only when a finite space runs out)."""
    rng = np.random.default_rng(seed)
    finite = space.size() < math.inf
    seen = {space.key(t.parameters) for t in trials}
    names = {d.name for d in space.dims}
    usable = [t for t in trials if set(t.parameters) >= names]
    done = [t for t in usable if t.state in _LEARNED and t.objective is not None and math.isfinite(t.objective)]
    pending = [t.parameters for t in usable if t.state in ACTIVE_STATES]
    x = [_encode(space, t.parameters) for t in done]
    y = [float(-t.objective if maximize else t.objective) for t in done if t.objective is not None]
    fit_x, fit_y = _window(x, y, (MAX_FIT - MAX_LIARS) // 2)
    pool: list[dict[str, str]] = []
    candidates: np.ndarray | None = None
    out: list[dict[str, str]] = []
    memo: dict[str, Any] = {}
    order: np.ndarray | None = None
    fits = 0
    while len(out) < count and not (finite and len(seen) >= space.size()):
        params: dict[str, str] | None = None
        if len(done) >= settings["n_initial_points"] and y:
            if candidates is None:
                pool = [space.sample(rng) for _ in range(N_CANDIDATES)]
                best = sorted(range(len(y)), key=y.__getitem__)[:N_INCUMBENTS]
                pool += [_near(space, done[i].parameters, rng) for i in best for _ in range(N_LOCAL)]
                candidates = np.array([_encode(space, p) for p in pool])
            if fits < MAX_REFITS:
                liars = [_encode(space, p) for p in (pending + out)[-MAX_LIARS:]]
                xs = np.array(fit_x + liars)
                ys = np.array(fit_y + [min(y)] * len(liars))
                mean, std = _fit_predict(settings["base_estimator"], seed, xs, ys, candidates, memo)
                order = np.argsort(-_acquisition(settings["acq_func"], mean, std, min(y)))
                fits += 1
            assert order is not None
            for i in order:
                if space.key(pool[int(i)]) not in seen:
                    params = pool[int(i)]
                    break
        if params is None:  # still among the initial points, or no candidate is free
            params = space.free_point(seen, rng)
        seen.add(space.key(params))
        out.append(params)
    return out


def _window(x: list[Any], y: list[float], half: int) -> tuple[list[Any], list[float]]:
    """At most ``2 * half`` points: the ``half`` best and the ``half`` most recent others."""
    keep = best_and_latest(y, half)
    return [x[i] for i in keep], [y[i] for i in keep]


def _near(space: SearchSpace, params: dict[str, str], rng: np.random.Generator) -> dict[str, str]:
    """A point near ``params``: each number moved by a small step of its quantile, each
    category kept, or drawn afresh one time in five."""
    out = {}
    for d in space.dims:
        if d.categorical:
            out[d.name] = d.sample(rng) if rng.random() < 0.2 else params[d.name]
        else:
            out[d.name] = d.from_unit(d.to_unit(params[d.name]) + rng.normal(0.0, LOCAL_STEP))
    return out


