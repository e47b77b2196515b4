"""Katib algorithm name → class, imported on first use.

Third parties add algorithms through the ``katib.algorithms`` entry-point group
(``name = "package.module:Class"``).
"""

from __future__ import annotations

import importlib
from functools import cache

from katib._entry_points import entry_points_in
from katib.errors import KatibError

from ._base import Algorithm
from ._early_stopping import EarlyStopper

ENTRY_POINT_GROUP = "katib.algorithms"

_BUILTIN: dict[str, str] = {
    "auto": "suggestion._auto:Auto",
    "random": "suggestion._random:RandomSearch",
    "grid": "suggestion._grid:GridSearch",
    "sobol": "suggestion._sobol:Sobol",
    "tpe": "suggestion._tpe:TPE",
    "multivariate-tpe": "suggestion._tpe:MultivariateTPE",
    "cmaes": "suggestion._cmaes:CMAES",
    "bayesianoptimization": "suggestion._bayesopt:BayesianOptimization",
    "hyperband": "suggestion._hyperband:Hyperband",
    "pbt": "suggestion._pbt:PBT",
    "enas": "suggestion._nas:ENAS",
    "darts": "suggestion._nas:DARTS",
}
_EARLY_STOPPING: dict[str, str] = {
    "medianstop": "suggestion._early_stopping:MedianStop",
    "medianstop-live": "suggestion._early_stopping:LiveMedianStop",
    "asha": "suggestion._early_stopping:ASHA",
}


@cache
def _plugins() -> dict[str, str]:
    return {ep.name: ep.value for ep in entry_points_in(ENTRY_POINT_GROUP)}


def algorithm_names() -> set[str]:
    """Every algorithm name this installation knows (no imports happen)."""
    return set(_BUILTIN) | set(_plugins())


def early_stopping_names() -> set[str]:
    return set(_EARLY_STOPPING)


def _load(target: str) -> type:
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def get_early_stopper(name: str) -> EarlyStopper:
    """A new instance of the early stopping rule Katib calls ``name``."""
    target = _EARLY_STOPPING.get(name)
    if target is None:
        raise KatibError(f"unknown early stopping algorithm {name!r} (available: {', '.join(sorted(_EARLY_STOPPING))})")
    return _load(target)()


def get_algorithm(name: str) -> Algorithm:
    """A new instance of the algorithm Katib calls ``name``."""
    target = _BUILTIN.get(name) or _plugins().get(name)
    if target is None:
        raise KatibError(f"unknown algorithm {name!r} (available: {', '.join(sorted(algorithm_names()))})")
    cls = _load(target)
    if not (isinstance(cls, type) and issubclass(cls, Algorithm)):
        raise KatibError(f"{target} is not a suggestion.Algorithm")
    return cls()
