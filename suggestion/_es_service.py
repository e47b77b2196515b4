"""Katib's gRPC ``EarlyStopping`` service: its medianstop, as its own service computes it.

``GetEarlyStoppingRules`` answers Katib's rule for the trials about to be created: the mean,
over the succeeded trials, of each one's average over its first ``start_step`` objective
reports (read from the DB manager at ``db_manager_address``, as Katib's service reads them),
compared ``LESS`` when maximising and ``GREATER`` when minimising, once a trial has made
``start_step`` reports. No rule until ``min_trials_required`` trials have succeeded. The
settings are read at an experiment's first call, and each trial's average is kept, as in
Katib's service; one server keeps them per experiment name, DB manager, objective and
settings (Katib runs one service per experiment), for at most ``MAX_EXPERIMENTS``
experiments, and the mean is over the trials the request names (Katib's requests name all
of them): a caller of the same name with another DB manager or other settings, or naming
other trials, changes no one else's rule. Two deliberate differences: a succeeded trial
without reports, and values that are not numbers, are skipped (Katib's service divides by
zero / fails the call).

Bounded cost: names of at most 253 characters, at most ``MAX_TRIALS`` trials a request, at
most ``MAX_BUSY`` rule requests at once (the others are RESOURCE_EXHAUSTED: they share the
server's workers with Suggestion and health), each answered within ``RULE_SECONDS``.

``SetTrialStatus`` stops a running trial early through ``set_trial_status`` (the server's
controllers); without one (``katib suggestion serve`` alone) it says that it cannot.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

SERVICE_NAME = "api.v1.beta1.EarlyStopping"
SUCCEEDED = 2  # TrialStatus.TrialConditionType.SUCCEEDED
_MAXIMIZE = 2
_LESS, _GREATER = 2, 3
MAX_EXPERIMENTS = 256  # kept, least recently asked dropped first
MAX_TRIALS = 100_000  # a request's trials
MAX_NAME = 253
MAX_BUSY = 2  # GetEarlyStoppingRules at once; the server has 4 workers for every service
RULE_SECONDS = 120.0  # the most one request waits on the DB manager, all its reads together


def _pb() -> Any:
    from .grpc import api_pb2

    return api_pb2


def validate_medianstop_settings(settings: Any) -> tuple[bool, str]:
    """Katib's ``validate_medianstop_setting``, message for message."""
    for setting in settings:
        try:
            if setting.name == "min_trials_required":
                if not int(setting.value) > 0:
                    return False, "min_trials_required must be greater than zero (>0)"
            elif setting.name == "start_step":
                if not int(setting.value) >= 1:
                    return False, "start_step must be greater or equal than one (>=1)"
            else:
                return False, f"unknown setting {setting.name} for algorithm medianstop"
        except Exception as exc:  # noqa: BLE001 - Katib reports any failure to parse this way
            return False, f"failed to validate {setting.name}({setting.value}): {exc}"
    return True, ""


@dataclass
class _Experiment:
    min_trials_required: int
    start_step: int
    comparison: int
    metric: str
    address: str
    averages: dict[str, float] = field(default_factory=dict)


def fetch_over_grpc(address: str, trial: str, metric: str, timeout: float = 120.0) -> list[str]:
    """The trial's values of ``metric`` in time order, from the DBManager at ``address``."""
    import grpc

    from .grpc import api_pb2_grpc

    with grpc.insecure_channel(address) as channel:
        reply = api_pb2_grpc.DBManagerStub(channel).GetObservationLog(
            _pb().GetObservationLogRequest(trial_name=trial, metric_name=metric), timeout=timeout)
    return [log.metric.value for log in reply.observation_log.metric_logs]


class EarlyStoppingServicer:
    """``api.v1.beta1.EarlyStopping`` with Katib's medianstop."""

    def __init__(self, set_trial_status: Callable[[str], str | None] | None = None,
                 fetch: Callable[[str, str, str, float], list[str]] = fetch_over_grpc) -> None:
        self._set_trial_status = set_trial_status
        self._fetch = fetch
        self._experiments: OrderedDict[tuple[Any, ...], _Experiment] = OrderedDict()
        self._lock = threading.Lock()
        self._busy = threading.BoundedSemaphore(MAX_BUSY)

    def ValidateEarlyStoppingSettings(self, request: Any, context: Any) -> Any:  # noqa: N802 - gRPC's name
        import grpc

        spec = request.early_stopping
        if spec.algorithm_name == "medianstop":
            valid, message = validate_medianstop_settings(spec.algorithm_settings)
        else:
            valid, message = False, f"unknown algorithm name {spec.algorithm_name}"
        if not valid:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, message)
        return _pb().ValidateEarlyStoppingSettingsReply()

    def _experiment(self, request: Any, context: Any) -> _Experiment:
        import grpc

        spec = request.experiment.spec
        es = spec.early_stopping
        key = (request.experiment.name, request.db_manager_address, spec.objective.objective_metric_name,
               spec.objective.type, es.algorithm_name, tuple((x.name, x.value) for x in es.algorithm_settings))
        with self._lock:
            known = self._experiments.get(key)
            if known is not None:
                self._experiments.move_to_end(key)
                return known
        if es.algorithm_name not in ("", "medianstop"):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"unknown algorithm name {es.algorithm_name}")
        valid, message = validate_medianstop_settings(es.algorithm_settings)
        if not valid:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, message)
        settings = {s.name: int(s.value) for s in es.algorithm_settings}
        if len(request.db_manager_address.split(":")) != 2:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"Invalid Katib DB manager service address: {request.db_manager_address!r} (host:port)")
        state = _Experiment(
            min_trials_required=settings.get("min_trials_required", 3), start_step=settings.get("start_step", 4),
            comparison=_LESS if spec.objective.type == _MAXIMIZE else _GREATER,
            metric=spec.objective.objective_metric_name, address=request.db_manager_address)
        with self._lock:
            kept = self._experiments.setdefault(key, state)
            self._experiments.move_to_end(key)
            while len(self._experiments) > MAX_EXPERIMENTS:
                self._experiments.popitem(last=False)
            return kept

    def GetEarlyStoppingRules(self, request: Any, context: Any) -> Any:  # noqa: N802
        import grpc

        if len(request.experiment.name) > MAX_NAME:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"experiment.name: at most {MAX_NAME} characters")
        if len(request.trials) > MAX_TRIALS:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"trials: at most {MAX_TRIALS} a request (got {len(request.trials)})")
        for i, trial in enumerate(request.trials):
            if len(trial.name) > MAX_NAME:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"trials[{i}].name: at most {MAX_NAME} characters")
        if not self._busy.acquire(blocking=False):
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                          f"{MAX_BUSY} early-stopping requests are being answered; ask again shortly")
        try:
            return self._rules(request, context)
        finally:
            self._busy.release()

    def _rules(self, request: Any, context: Any) -> Any:
        import grpc

        pb = _pb()
        exp = self._experiment(request, context)
        deadline = time.monotonic() + RULE_SECONDS
        for trial in request.trials:
            if trial.name in exp.averages or trial.status.condition != SUCCEEDED:
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                context.abort(grpc.StatusCode.DEADLINE_EXCEEDED,
                              f"the DB manager at {exp.address} took more than {RULE_SECONDS:.0f} s to answer")
            try:
                values = self._fetch(exp.address, trial.name, exp.metric, left)
            except grpc.RpcError as exc:
                context.abort(grpc.StatusCode.UNAVAILABLE,
                              f"the DB manager at {exp.address}: {exc.code().name}: {exc.details()}")
            numbers = []
            for v in values[:exp.start_step]:
                try:
                    numbers.append(float(v))
                except ValueError:
                    continue
            if numbers:
                exp.averages[trial.name] = sum(numbers) / len(numbers)
        reply = pb.GetEarlyStoppingRulesReply()
        named = {t.name for t in request.trials}
        averages = [v for name, v in exp.averages.items() if name in named]
        if averages and len(averages) >= exp.min_trials_required:
            mean = sum(averages) / len(averages)
            reply.early_stopping_rules.append(pb.EarlyStoppingRule(
                name=exp.metric, value=str(mean), comparison=exp.comparison, start_step=exp.start_step))
        return reply

    def SetTrialStatus(self, request: Any, context: Any) -> Any:  # noqa: N802
        import grpc

        set_status = self._set_trial_status
        if set_status is None:
            context.abort(grpc.StatusCode.UNIMPLEMENTED,
                          "SetTrialStatus needs the trials: serve the gRPC API from `katib server --grpc-port`")
            raise AssertionError("unreachable: abort raises")
        error = set_status(request.trial_name)
        if error:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, error)
        return _pb().SetTrialStatusReply()
