"""``katib.report_metrics``: the Push collector's trial-side half.

A trial started by katib on this machine (or on Ray) gets ``KATIB_TRIAL_NAME`` and
``KATIB_PUSH_FILE`` in its environment; each call appends one JSON line
``{"timestamp": …, "<metric>": "<value>"}`` to that file, which the controller reads while
the trial runs. No database access and no network from inside the trial, so parallel
trials never contend for a lock.

A trial in a Kubernetes pod has no such file: it gets ``KATIB_PUSH_URL`` (the address of
the ``katib server`` running it), ``KATIB_NAMESPACE`` and ``KATIB_API_TOKEN`` (a token
that pushes this trial's metrics and nothing else: ``katib._pushtoken``), and each call
POSTs the same record to ``/api/v1/namespaces/{namespace}/trials/{trial}/metrics``.
"""

from __future__ import annotations

import json
import math
import os
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .errors import KatibError

PUSH_FILE_ENV = "KATIB_PUSH_FILE"
PUSH_URL_ENV = "KATIB_PUSH_URL"
TOKEN_ENV = "KATIB_API_TOKEN"
NAMESPACE_ENV = "KATIB_NAMESPACE"
TRIAL_NAME_ENV = "KATIB_TRIAL_NAME"
PUSH_BYTES = 64 << 20  # the most bytes of metrics one trial may push through a server, in all
PUSH_BYTES_ENV = "KATIB_MAX_PUSH_BYTES"
_append_lock = threading.Lock()


def env_limit(name: str, default: int, environ: Mapping[str, str] | None = None) -> int:
    """The limit the variable ``name`` sets where it is a positive integer, else ``default``
    (``katib server`` refuses to start on another value: ``api._state.ServerLimits``)."""
    text = (os.environ if environ is None else environ).get(name, "").strip()
    return int(text) if text.isdigit() and int(text) > 0 else default


def push_bytes_limit(environ: Mapping[str, str] | None = None) -> int:
    """``KATIB_MAX_PUSH_BYTES``, else ``PUSH_BYTES``."""
    return env_limit(PUSH_BYTES_ENV, PUSH_BYTES, environ)


def append_pushed(path: Path, data: bytes, cap: int) -> int | None:
    """The server's half: append ``data`` (whole JSON lines) to a trial's push file unless
    the file would pass ``cap`` bytes; None when appended, else the bytes it holds (nothing
    is appended). One lock: two pushes cannot both pass the cap."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with _append_lock, path.open("ab") as f:
        held = f.seek(0, 2)
        if held + len(data) > cap:
            return held
        f.write(data)
    return None


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
    path, url = os.environ.get(PUSH_FILE_ENV), os.environ.get(PUSH_URL_ENV)
    if not path and not url:
        raise KatibError(
            "report_metrics() must be called inside a trial started by katib "
            f"(neither {PUSH_FILE_ENV} nor {PUSH_URL_ENV} is set in this process's environment)"
        )
    record = metrics_record(metrics)
    if not path:
        assert url is not None
        _post(url, record, timeout)
        return
    line = (json.dumps(record) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def metrics_record(metrics: Mapping[str, Any]) -> dict[str, str]:
    """``{"timestamp": now, name: value as text}``; a value that is not a finite number is refused."""
    record: dict[str, str] = {"timestamp": datetime.now(UTC).isoformat()}
    for name, value in metrics.items():
        if str(name) == "timestamp":
            raise ValueError("metric 'timestamp' is not a metric name: the record's own timestamp is the report's time")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"metric {name!r} must be a number (got {value!r})") from None
        if not math.isfinite(number):
            raise ValueError(f"metric {name!r} must be finite (got {value!r})")
        record[str(name)] = _as_text(value, number)
    return record


def _as_text(value: Any, number: float) -> str:
    """``value`` as it is written (``0.1`` for numpy's float32 0.1), unless the collector
    could not read that back as a number (``True``, ``Fraction(1, 3)``'s ``1/3``): then the
    float's own text."""
    text = str(value).strip()
    try:
        float(text)
    except ValueError:
        return repr(number)
    return text


def _post(url: str, record: dict[str, str], timeout: int | None) -> None:
    import urllib.error
    import urllib.request
    from urllib.parse import quote

    trial = os.environ.get(TRIAL_NAME_ENV, "")
    namespace = os.environ.get(NAMESPACE_ENV, "default")
    headers = {"Content-Type": "application/json"}
    if os.environ.get(TOKEN_ENV):
        headers["Authorization"] = f"Bearer {os.environ[TOKEN_ENV]}"
    request = urllib.request.Request(
        f"{url.rstrip('/')}/api/v1/namespaces/{quote(namespace)}/trials/{quote(trial)}/metrics",
        data=json.dumps(record).encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout or 30):
            pass
    except urllib.error.HTTPError as exc:
        text = exc.read().decode(errors="replace")
        try:
            text = str(json.loads(text).get("message") or text)
        except (ValueError, AttributeError):
            pass
        raise KatibError(f"katib server refused the metrics of trial {trial}: {exc.code} {text}") from None
    except OSError as exc:
        raise KatibError(f"cannot reach katib server at {url} to report metrics: {exc}") from None
