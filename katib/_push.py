"""``katib.report_metrics``: the Push collector's trial-side half.

A trial started by katib gets ``KATIB_TRIAL_NAME`` and ``KATIB_PUSH_FILE`` in its
environment; each call appends one JSON line ``{"timestamp": …, "<metric>": "<value>"}``
to that file, which the controller reads while the trial runs. No database access and no
network from inside the trial, so parallel trials never contend for a lock.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from .errors import KatibError

PUSH_FILE_ENV = "KATIB_PUSH_FILE"
TRIAL_NAME_ENV = "KATIB_TRIAL_NAME"


def report_metrics(
    metrics: Mapping[str, Any],
    db_manager_address: str | None = None,
    timeout: int | None = None,
) -> None:
    """Record ``metrics`` (name → number) for the current trial, with the current time.

    >>> import katib
    >>> katib.report_metrics({"loss": 0.25, "accuracy": 0.91})  # doctest: +SKIP

    ``db_manager_address`` and ``timeout`` are accepted for compatibility with
    ``kubeflow-katib``'s signature; the local channel needs neither.
    """
    path = os.environ.get(PUSH_FILE_ENV)
    if not path:
        raise KatibError(
            "report_metrics() must be called inside a trial started by katib "
            f"({PUSH_FILE_ENV} is not set in this process's environment)"
        )
    record: dict[str, str] = {"timestamp": datetime.now(UTC).isoformat()}
    for name, value in metrics.items():
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"metric {name!r} must be a number (got {value!r})") from None
        if not math.isfinite(number):
            raise ValueError(f"metric {name!r} must be finite (got {value!r})")
        record[str(name)] = str(value)
    line = (json.dumps(record) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)
