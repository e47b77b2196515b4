"""Parameter helpers for ``KatibClient.tune`` (the names of ``kubeflow.katib.search``).

>>> from katib import search
>>> search.double(0.001, 0.1, distribution="logUniform")["feasibleSpace"]
{'min': '0.001', 'max': '0.1', 'distribution': 'logUniform'}
"""

from __future__ import annotations

import builtins
from typing import Any


def _space(min: Any, max: Any, step: Any, distribution: str | None) -> dict[str, Any]:
    space = {"min": str(min), "max": str(max)}
    if step is not None:
        space["step"] = str(step)
    if distribution:
        space["distribution"] = distribution
    return space


def double(min: float, max: float, step: float | None = None, distribution: str | None = None) -> dict[str, Any]:
    """A float in [min, max]; ``distribution``: uniform, logUniform, normal, logNormal."""
    return {"parameterType": "double", "feasibleSpace": _space(min, max, step, distribution)}


def int(min: builtins.int, max: builtins.int, step: builtins.int | None = None, distribution: str | None = None) -> dict[str, Any]:
    """An integer in [min, max]."""
    return {"parameterType": "int", "feasibleSpace": _space(min, max, step, distribution)}


def categorical(list: builtins.list[Any]) -> dict[str, Any]:
    """One of the values."""
    return {"parameterType": "categorical", "feasibleSpace": {"list": [str(v) for v in list]}}


def discrete(list: builtins.list[float]) -> dict[str, Any]:
    """One of the numbers."""
    return {"parameterType": "discrete", "feasibleSpace": {"list": [str(v) for v in list]}}
