"""A quadratic-model trust region: ``auto``'s local phase on small numeric spaces.

Each proposal fits a quadratic to the evaluated points nearest the centre, in the unit cube
(least squares weighted by distance; with all cross terms once there are enough points,
else with the squares alone), and proposes the model's minimum within a box of half-width
Δ around the centre. Δ doubles after a step to the box's edge that gained at least 3/4 of
what the model promised, and halves after one that gained less than a tenth, or nothing.
That is the derivative-free trust region of Powell's NEWUOA and BOBYQA, kept simple: the
model is fitted again from the history at every proposal, so a restarted controller needs
only the history and what the algorithm state keeps (Δ, the steps out and what each
promised, the basins spent).

The centre is the best trial outside every spent basin. When Δ shrinks below ``DELTA_MIN``
the region has found its basin's bottom: the centre is spent, the global model (``auto``'s
TPE) proposes ``EXPLORE`` points, and the region starts again, with its first Δ, at the
best point farther than ``SPENT_RADIUS`` from every spent centre, so a multimodal function
gets several basins searched instead of the rest of the budget in its first.

A quadratic is exact on a sphere or an ellipsoid and close near any smooth minimum, so the
trust region descends ill-conditioned valleys in a few dozen trials where a TPE or a
CMA-ES with a small step needs hundreds (docs/benchmarks.md: BBOB's ellipsoids at d = 5,
10^2 against 10^4 at 100 trials). Several proposals at once: the model's minimum, then
points at random in the box (they also keep the model's points spread).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

DELTA0 = 0.1  # the first box's half-width, of the unit range
DELTA_MAX = 0.5
DELTA_MIN = 1e-4  # below it the basin is spent (chosen on BBOB at d = 5 among 1e-3, 1e-4, 1e-7)
EXPLORE = 10  # proposals of the global model after a basin is spent
SPENT_RADIUS = 0.1  # a new centre lies this far (unit cube, Euclidean) from every spent one


def quadratic_features(z: np.ndarray, full: bool) -> np.ndarray:
    """Columns 1, z_i, z_i², and (``full``) z_i·z_j for i < j."""
    n, d = z.shape
    cols = [np.ones(n), *(z[:, i] for i in range(d)), *(z[:, i] ** 2 for i in range(d))]
    if full:
        cols += [z[:, i] * z[:, j] for i in range(d) for j in range(i + 1, d)]
    return np.stack(cols, 1)


def fit(x: np.ndarray, y: np.ndarray, centre: np.ndarray, delta: float) -> tuple[np.ndarray, np.ndarray, float]:
    """The gradient and Hessian, at ``centre`` in units of ``delta``, of a quadratic fitted
    to the points nearest ``centre``, and the scale ``y`` was divided by."""
    n, d = x.shape
    p_full = (d + 1) * (d + 2) // 2
    dist = np.linalg.norm(x - centre, axis=1)
    full = n >= p_full + d
    k = min(n, 2 * p_full if full else 4 * d + 2)
    near = np.argsort(dist, kind="stable")[:k]
    z = (x[near] - centre) / delta
    features = quadratic_features(z, full)
    weights = 1.0 / (1.0 + (dist[near] / delta) ** 2)
    values = y[near] - y[near].min()
    with np.errstate(over="ignore", invalid="ignore"):
        scale = float(np.std(values))
    if not math.isfinite(scale) or scale == 0:  # values past 1e154 overflow the squares: their largest
        scale = float(np.max(values)) or 1.0
    a = features * weights[:, None]
    ridge = 1e-6 * np.eye(features.shape[1])
    ridge[0, 0] = 0.0
    coef = np.linalg.solve(a.T @ a + ridge, a.T @ (values / scale * weights))
    grad = coef[1:d + 1].copy()
    hess = np.diag(2.0 * coef[d + 1:2 * d + 1])
    if full:
        at = 2 * d + 1
        for i in range(d):
            for j in range(i + 1, d):
                hess[i, j] = hess[j, i] = coef[at]
                at += 1
    return grad, hess, scale


def model_step(grad: np.ndarray, hess: np.ndarray, low: np.ndarray, high: np.ndarray,
               rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """The step in ``[low, high]`` that minimises ``g·z + z·H·z / 2`` (from the centre and
    two random starts), and the decrease it promises (in the fit's units)."""
    from scipy.optimize import minimize

    def model(z: np.ndarray) -> tuple[float, np.ndarray]:
        return float(grad @ z + 0.5 * z @ hess @ z), grad + hess @ z

    bounds = list(zip(low, high, strict=True))
    best: Any = None
    for start in (np.zeros(len(grad)), rng.uniform(low, high), rng.uniform(low, high)):
        found = minimize(model, start, jac=True, method="L-BFGS-B", bounds=bounds)
        if best is None or found.fun < best.fun:
            best = found
    return np.asarray(best.x), -float(best.fun)


def propose(x: np.ndarray, y: np.ndarray, keys: Sequence[Any], pending: set[str], failed: set[str],
            state: dict[str, Any], count: int, rng: np.random.Generator,
            free: np.ndarray | None = None) -> list[tuple[np.ndarray, dict[str, float] | None]]:
    """Up to ``count`` points of the unit cube, each with what it promises (None: a point
    at random in the box), from the completed points ``x`` (rows) and their values ``y``
    (minimised); none when it is the global model's turn (no point yet, a basin just spent,
    or its ``explore`` proposals not all made).

    ``keys`` name the rows as the state names the steps sent out (the caller records each
    promise under its point's key in ``state["out"]``); Δ (``state["delta"]``) is updated in
    place from the steps that came back: a step whose trial ended without a finite value
    (``failed``: it crashed, or diverged) gained nothing. A step's length is in units of Δ.
    While a model step is still out (its key in ``pending``), the proposals are points at
    random in the box: the model, fitted to the same points, would propose the same step
    again. ``free`` marks the dimensions that vary (a parameter whose min is its max does
    not: the box has no width there)."""
    if len(y) == 0:
        return []
    delta = float(state.get("delta", DELTA0))
    out: dict[str, Any] = state.setdefault("out", {})
    for key, value in zip(keys, y, strict=True):
        sent = out.pop(str(key), None)
        if sent is None:
            continue
        gained = sent["before"] - float(value)
        if gained > 0 and gained >= 0.75 * sent["promised"] and sent["step"] > 0.8:  # to the box's edge
            delta = min(2 * delta, DELTA_MAX)
        elif gained <= 0 or gained < 0.1 * sent["promised"]:
            delta /= 2
    for key in [k for k in out if k not in pending]:
        if key in failed:
            delta /= 2  # the step crashed or diverged: the box was too wide for the model
        del out[key]  # (or the trial is gone: it says nothing of the model)
    state["delta"] = delta
    if state.get("explore", 0) > 0:
        return []  # the global model's turn
    spent = np.asarray(state.get("spent", []), dtype=float).reshape(-1, x.shape[1])
    best = int(np.argmin(y))
    if len(spent):  # the best point outside every basin the region has shrunk away in
        far = np.all(np.linalg.norm(x[:, None, :] - spent[None, :, :], axis=2) > SPENT_RADIUS, axis=1)
        if far.any():
            best = int(np.flatnonzero(far)[np.argmin(y[far])])
    if delta < DELTA_MIN:  # shrunk away around this centre: its basin is spent
        state["spent"] = [*spent.tolist(), x[best].tolist()]
        state["delta"], state["explore"], state["out"] = DELTA0, EXPLORE, {}
        return []
    centre, before = x[best], float(y[best])
    width = np.ones(len(centre)) if free is None else free.astype(float)
    low = np.maximum(-1.0, -centre / delta) * width
    high = np.minimum(1.0, (1.0 - centre) / delta) * width
    if out:  # a model step is out
        return [(np.clip(centre + rng.uniform(low, high) * delta, 0.0, 1.0), None) for _ in range(count)]
    grad, hess, scale = fit(x, y, centre, delta)
    z, promised = model_step(grad, hess, low, high, rng)
    promise: dict[str, float] | None = None
    if math.isfinite(promised * scale) and promised > 0 and np.linalg.norm(z) >= 1e-3:
        promise = {"before": before, "promised": promised * scale, "step": float(np.linalg.norm(z))}
    else:  # the model promises nothing here: a step of Δ in a direction at random
        direction = rng.normal(size=len(centre)) * width
        z = np.clip(direction / (np.linalg.norm(direction) or 1.0), low, high)
        promise = {"before": before, "promised": 0.0, "step": float(np.linalg.norm(z))}
    points: list[tuple[np.ndarray, dict[str, float] | None]] = [(np.clip(centre + z * delta, 0.0, 1.0), promise)]
    while len(points) < count:
        points.append((np.clip(centre + rng.uniform(low, high) * delta, 0.0, 1.0), None))
    return points
