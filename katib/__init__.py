"""katib: Kubeflow Katib's experiments on a laptop, Ray or Kubernetes.

The public face is small: ``report_metrics`` for trial code, the error classes, and the
subpackages ``katib.spec`` (resources), ``katib.store`` and ``katib.controller``. Heavy
modules load on first use so that ``katib validate`` stays fast.
"""

from __future__ import annotations

from ._push import report_metrics
from .errors import (
    ConflictError,
    FieldError,
    KatibError,
    NotFoundError,
    TemporaryError,
    ValidationError,
)

__version__ = "0.1.0"

__all__ = [
    "ConflictError",
    "FieldError",
    "KatibError",
    "NotFoundError",
    "TemporaryError",
    "ValidationError",
    "__version__",
    "report_metrics",
]
