"""katib: Kubeflow Katib's experiments on a laptop, Ray or Kubernetes.

The public face is small: ``report_metrics`` and ``save_model`` for trial code, ``KatibClient``
(whose ``tune`` returns an ``ExperimentResult``), the error classes, and the
subpackages ``katib.spec`` (resources), ``katib.store`` and ``katib.controller``. Heavy
modules load on first use so that ``katib validate`` stays fast.
"""

from __future__ import annotations

from . import search
from ._model import load_model, save_model
from ._push import report_metrics
from .errors import (
    ConflictError,
    ExperimentFailedError,
    FieldError,
    KatibError,
    NoResultError,
    NotFoundError,
    TemporaryError,
    ValidationError,
)

__version__ = "0.1.0"

__all__ = [
    "ConflictError",
    "ExperimentFailedError",
    "ExperimentResult",
    "KatibClient",
    "FieldError",
    "KatibError",
    "NoResultError",
    "NotFoundError",
    "TemporaryError",
    "ValidationError",
    "__version__",
    "load_model",
    "report_metrics",
    "save_model",
    "search",
]


def __getattr__(name: str) -> object:
    # The client pulls in the store and the controller: load it only when asked for.
    if name == "KatibClient":
        from .client import KatibClient

        return KatibClient
    if name == "ExperimentResult":
        from ._results import ExperimentResult

        return ExperimentResult
    raise AttributeError(f"module 'katib' has no attribute {name!r}")
