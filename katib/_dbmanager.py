"""Katib's gRPC ``DBManager`` service over our store.

What a Katib DB manager does, for the kubeflow-katib SDK (``get_trial_metrics``,
``report_metrics``), for metrics collectors that report through it (a ``Custom``
collector) and for a Katib control plane that points its ``katib-db-manager`` address here:

- ``ReportObservationLog``: a running trial of ours gets the values as pushed metrics (the
  controller reads them while the trial runs, whatever its collector kind, as Katib's
  DB accepts them); a trial this store does not hold gets them stored by its name, as
  Katib stores them. Logs without a timestamp are skipped, as Katib's SQL backends skip
  them. A finished trial of ours takes no more values (Katib would store them, but they
  could no longer change the trial's observation): ``FAILED_PRECONDITION``.
- ``GetObservationLog``: the log in time order, filtered by metric name and an RFC 3339
  time range, timestamps written as Go's ``RFC3339Nano`` in UTC.
- ``DeleteObservationLog``: the trial's whole log.

Katib's API carries only the trial's name; a name held by trials in two namespaces is
refused (``FAILED_PRECONDITION``) rather than guessed.
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ._push import PUSH_BYTES_ENV, append_pushed, push_bytes_limit
from .names import RunLayout
from .store import ObservationRow, Store, TrialLogs

SERVICE_NAME = "api.v1.beta1.DBManager"
# The metric logs one trial that is not this server's may hold, and a reply gives: as many
# as the collector keeps of a trial of ours (KATIB_MAX_TRIAL_SAMPLES' default). Unbounded,
# any local process could fill the database, and one GetObservationLog build a reply of it.
EXTERNAL_ROWS = 100_000
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
_OPEN = ("Created", "Running")


def parse_rfc3339(text: str) -> float:
    """Seconds since the epoch; ``ValueError`` unless ``text`` is RFC 3339 with an offset
    (Go's ``time.Parse(time.RFC3339Nano, …)`` takes the same strings).

    >>> parse_rfc3339("2019-02-03T04:05:06+09:00")
    1549134306.0
    """
    if not _RFC3339.fullmatch(text):
        raise ValueError(f'parsing time "{text}" as RFC 3339: it needs a date, a time and an offset '
                         '(2006-01-02T15:04:05Z07:00)')
    ts = datetime.fromisoformat(text.replace("z", "Z")).timestamp()
    try:
        datetime.fromtimestamp(ts, UTC)  # what format_rfc3339 answers it with
    except (OverflowError, ValueError, OSError):
        raise ValueError(f'time "{text}" is outside the years 1 to 9999 in UTC') from None
    return ts


def format_rfc3339(ts: float) -> str:
    """Go's ``RFC3339Nano`` in UTC: no trailing zeros in the fraction.

    >>> format_rfc3339(1549134306.5), format_rfc3339(1549134306.0)
    ('2019-02-02T19:05:06.5Z', '2019-02-02T19:05:06Z')
    """
    dt = datetime.fromtimestamp(ts, UTC)
    text = f"{dt.year:04d}" + dt.strftime("-%m-%dT%H:%M:%S")  # %Y gives "1" for Katib's zero time
    if dt.microsecond:
        text += "." + f"{dt.microsecond:06d}".rstrip("0")
    return text + "Z"


UNAVAILABLE = "unavailable"  # Katib's metrics collector's value for a metric it did not find


def _kept(text: str) -> bool:
    """Whether the trial's collector keeps ``text``: a finite number, or text (a genotype,
    as Katib's collectors report one); not empty, not NaN or an infinity."""
    try:
        return math.isfinite(float(text))
    except ValueError:
        return bool(text.strip())


def _pb() -> Any:
    from suggestion.grpc import api_pb2

    return api_pb2


class DBManagerServicer:
    """``api.v1.beta1.DBManager`` over ``store``; pushed values go to the trials'
    push files under ``runs_root`` (where the server's controllers read them)."""

    def __init__(self, store: Store, runs_root: Path) -> None:
        self.logs = TrialLogs(store)
        self.store = store
        self.layout = RunLayout(runs_root)
        self.push_bytes = push_bytes_limit()

    def probe(self) -> str | None:
        """Why the database cannot serve (None: it answers), for the health check."""
        return self.store.ping()

    def _ours(self, name: str, context: Any) -> Any:
        import grpc

        if not name:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "trial_name is required")
        found = self.logs.find_trials(name)
        if len(found) > 1:
            spaces = ", ".join(sorted(rec.namespace for rec, _ in found))
            context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                          f"trial name {name} is held in several namespaces ({spaces}); Katib's API names no namespace")
        return found[0] if found else None

    def ReportObservationLog(self, request: Any, context: Any) -> Any:  # noqa: N802 - gRPC's name
        import grpc

        rows, at = [], []  # at: each row's index in the request (logs without a time are skipped)
        for i, log in enumerate(request.observation_log.metric_logs):
            if not log.time_stamp:
                continue  # as Katib's MySQL and PostgreSQL backends do
            try:
                ts = parse_rfc3339(log.time_stamp)
            except ValueError as exc:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                              f"observation_log.metric_logs[{i}].time_stamp: Error parsing start time "
                              f"{log.time_stamp}: {exc}")
            if not log.metric.name:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                              f"observation_log.metric_logs[{i}].metric.name is required")
            rows.append(ObservationRow(ts, log.metric.name, log.metric.value))
            at.append(i)
        found = self._ours(request.trial_name, context)
        if found is None:
            held = self.logs.add_external(request.trial_name, rows, most=EXTERNAL_ROWS)
            if held is not None:
                context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                              f"trial {request.trial_name} holds {held} metric logs, and these {len(rows)} would pass "
                              f"the limit of {EXTERNAL_ROWS} a trial: they were not recorded")
        else:
            rec, trial = found
            if trial.state not in _OPEN:
                context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                              f"trial {rec.namespace}/{trial.name} is {trial.state}: it takes no more metrics")
            # Katib's collector's "unavailable" (the metric not found) is left out; the rest is
            # what the trial's collector reads back, checked as a REST push is
            reported = [(i, r) for i, r in zip(at, rows, strict=True) if r.value != UNAVAILABLE]
            for i, r in reported:
                where = f"observation_log.metric_logs[{i}].metric"
                if r.metric_name == "timestamp":
                    context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                  f"{where}.name: 'timestamp' is not a metric name (it is each record's time)")
                if not _kept(r.value):
                    context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                  f"{where}.value: {r.metric_name} must be a finite number or text "
                                  f"(got {r.value[:80]!r})")
            path = self.layout.push_file(rec.namespace, rec.name, trial.name)
            data = "".join(json.dumps({"timestamp": r.time, r.metric_name: r.value}) + "\n" for _, r in reported).encode()
            held = append_pushed(path, data, self.push_bytes)
            if held is not None:
                context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                              f"trial {rec.namespace}/{trial.name} has pushed {held} bytes of metrics, and these "
                              f"{len(rows)} would pass the limit of {self.push_bytes} bytes of pushed metrics per "
                              f"trial (raise it with {PUSH_BYTES_ENV}): they were not recorded")
        return _pb().ReportObservationLogReply()

    def GetObservationLog(self, request: Any, context: Any) -> Any:  # noqa: N802
        import grpc

        bounds: list[float | None] = []
        for field, text, what in (("start_time", request.start_time, "start"),
                                  ("end_time", request.end_time, "completion")):
            try:
                bounds.append(parse_rfc3339(text) if text else None)
            except ValueError as exc:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"{field}: Error parsing {what} time {text}: {exc}")
        start, end = bounds
        found = self._ours(request.trial_name, context)
        if found is None:
            rows = self.logs.external(request.trial_name, request.metric_name or None, start, end, limit=EXTERNAL_ROWS)
        else:
            rows = [r for r in self.store.observations(found[1].id, request.metric_name or None)
                    if (start is None or r.time >= start) and (end is None or r.time <= end)]
        pb = _pb()
        reply = pb.GetObservationLogReply()
        reply.observation_log.SetInParent()
        for r in rows:
            reply.observation_log.metric_logs.append(pb.MetricLog(
                time_stamp=format_rfc3339(r.time), metric=pb.Metric(name=r.metric_name, value=r.value)))
        return reply

    def DeleteObservationLog(self, request: Any, context: Any) -> Any:  # noqa: N802
        found = self._ours(request.trial_name, context)
        if found is None:
            self.logs.delete_external(request.trial_name)
        else:
            self.store.clear_observations(found[1].id)
        return _pb().DeleteObservationLogReply()


def trial_stopper(store: Store, manager: Any) -> Any:
    """Katib's ``SetTrialStatus`` for this server's trials: the running controller stops
    the trial, which ends ``EarlyStopped``. Returns a function: trial name → error or None."""
    logs = TrialLogs(store)

    def set_trial_status(name: str) -> str | None:
        found = logs.find_trials(name)
        if not found:
            return f"trial {name} not found"
        if len(found) > 1:
            return f"trial name {name} is held in several namespaces; Katib's API names no namespace"
        rec, trial = found[0]
        if trial.state != "Running":
            return f"trial {rec.namespace}/{name} is {trial.state}: only a running trial can be stopped early"
        if not manager.stop_trial_early(rec.namespace, rec.name, name, "Trial is early stopped (SetTrialStatus)"):
            return f"no controller of this server runs experiment {rec.namespace}/{rec.name}"
        return None

    return set_trial_status


def serve_grpc(store: Store, runs_root: Path, manager: Any = None, host: str = "127.0.0.1", port: int = 6789) -> Any:
    """Katib's three gRPC services (Suggestion, EarlyStopping, DBManager) and health on
    ``host:port`` over this store; returns the running server (``bound_port`` says where)."""
    from suggestion import serve

    return serve(host, port, db_manager=DBManagerServicer(store, runs_root),
                 set_trial_status=trial_stopper(store, manager) if manager is not None else None)
