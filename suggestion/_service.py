"""Our algorithms behind Katib's gRPC ``Suggestion`` service, and a client for any such
service (ours or Katib's own) that the controller can use instead of a local algorithm.

``katib suggestion serve`` starts the server: an existing Katib deployment pointed at it
(a custom suggestion image whose command runs it) gets every algorithm of this project.
Algorithm state (hyperband's plan) travels in the reply's ``algorithm.algorithm_settings``
under ``katib_state``, as Katib's own services do, and comes back with the next request.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from katib._times import parse_time
from katib.errors import KatibError
from katib.spec import Experiment, Limits, apply_defaults, nas_config_errors

from ._base import Algorithm, Assignment, TrialView
from ._registry import get_algorithm

STATE_SETTING = "katib_state"
AVAILABLE_KEY = "katib-available"  # trailing metadata: how many suggestions a short answer had
SERVICE_NAME = "manager.v1beta1.Suggestion"
_TYPES = {1: "double", 2: "int", 3: "discrete", 4: "categorical"}
_DISTRIBUTIONS = {1: "uniform", 2: "logUniform", 3: "normal", 4: "logNormal"}
_STATES = {0: "Created", 1: "Running", 2: "Succeeded", 3: "Killed", 4: "Failed",
           5: "MetricsUnavailable", 6: "EarlyStopped", 7: "Running"}


def _pb() -> Any:
    from .grpc import api_pb2

    return api_pb2


# -- proto -> ours ---------------------------------------------------------------------


def experiment_from_proto(pb: Any) -> tuple[Experiment, dict[str, Any]]:
    """Our ``Experiment`` (defaults applied) and the algorithm state from a request."""
    spec = pb.spec
    state: dict[str, Any] = {}
    settings = []
    for s in spec.algorithm.algorithm_settings:
        if s.name == STATE_SETTING:
            try:
                state = json.loads(s.value or "{}")
            except RecursionError:  # nested past what the parser follows
                raise ValueError(f"{STATE_SETTING}: nested too deep") from None
            if not isinstance(state, dict):
                raise ValueError(f"{STATE_SETTING}: must be a JSON object (a state this service wrote), "
                                 f"not {type(state).__name__}")
        else:
            settings.append({"name": s.name, "value": s.value})
    doc: dict[str, Any] = {
        "metadata": {"name": pb.name or "experiment"},
        "spec": {
            "objective": {
                "type": {1: "minimize", 2: "maximize"}.get(spec.objective.type, "minimize"),
                "objectiveMetricName": spec.objective.objective_metric_name,
                "additionalMetricNames": list(spec.objective.additional_metric_names) or None,
            },
            "algorithm": {"algorithmName": spec.algorithm.algorithm_name, "algorithmSettings": settings},
            "parallelTrialCount": spec.parallel_trial_count or None,
            "maxTrialCount": spec.max_trial_count or None,
        },
    }
    if spec.objective.goal:
        doc["spec"]["objective"]["goal"] = spec.objective.goal
    limits = Limits.from_env()
    problem = limits.exceeded("parameters", len(spec.parameter_specs.parameters), "parameters")
    if problem:
        raise ValueError(f"experiment.spec.parameter_specs.parameters: {problem}")
    params = [_parameter(p, limits) for p in spec.parameter_specs.parameters]
    if params:
        doc["spec"]["parameters"] = params
    if spec.HasField("nas_config"):
        gc = spec.nas_config.graph_config
        doc["spec"]["nasConfig"] = {
            "graphConfig": {"numLayers": gc.num_layers, "inputSizes": list(gc.input_sizes) or None,
                            "outputSizes": list(gc.output_sizes) or None},
            "operations": [{"operationType": op.operation_type,
                            "parameters": [_parameter(p, limits) for p in op.parameter_specs.parameters] or None}
                           for op in spec.nas_config.operations.operation],
        }
    if spec.early_stopping.algorithm_name:
        doc["spec"]["earlyStopping"] = {
            "algorithmName": spec.early_stopping.algorithm_name,
            "algorithmSettings": [{"name": s.name, "value": s.value} for s in spec.early_stopping.algorithm_settings],
        }
    return apply_defaults(Experiment.model_validate(doc)), state


def _parameter(p: Any, limits: Limits) -> dict[str, Any]:
    fs = p.feasible_space
    space: dict[str, Any] = {k: v for k, v in (("min", fs.min), ("max", fs.max), ("step", fs.step)) if v}
    if len(fs.list):
        problem = limits.exceeded("list_values", len(fs.list), "values")
        if problem:
            raise ValueError(f"parameter {p.name[:100]!r}: feasible_space.list: {problem}")
        space["list"] = list(fs.list)
    if fs.distribution:
        if fs.distribution not in _DISTRIBUTIONS:
            raise ValueError(f"parameter {p.name[:100]!r}: feasible_space.distribution: unknown value "
                             f"{fs.distribution} (1 uniform, 2 logUniform, 3 normal, 4 logNormal)")
        space["distribution"] = _DISTRIBUTIONS[fs.distribution]
    return {"name": p.name, "parameterType": _TYPES.get(p.parameter_type, "unknown"), "feasibleSpace": space}


def trials_from_proto(trials: Sequence[Any], objective: str) -> list[TrialView]:
    """Our view of Katib's trials: the objective's value is the metric the trial's own spec
    names (as Katib's services read it), else the experiment's ``objective``."""
    views = []
    for t in trials:
        params = {a.name: a.value for a in t.spec.parameter_assignments.assignments}
        metrics: dict[str, float] = {}
        for m in t.status.observation.metrics:
            try:
                number = float(m.value)
            except ValueError:
                continue
            if math.isfinite(number):
                metrics[m.name] = number
        name = t.spec.objective.objective_metric_name or objective
        views.append(TrialView(t.name, params, _STATES.get(t.status.condition, "Running"), metrics.get(name), metrics,
                               labels=dict(t.spec.labels), start_time=parse_time(t.status.start_time or None),
                               completion_time=parse_time(t.status.completion_time or None)))
    return views


def _go_time(at: float | None) -> str:
    """Katib's controller's trial times: ``2006-01-02T15:04:05Z``, empty when unset."""
    if at is None:
        return ""
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- ours -> proto ---------------------------------------------------------------------


def _objective_to_proto(obj: Any) -> Any:
    """An experiment's ``ObjectiveSpec``, as the experiment and each trial's spec carry it."""
    return _pb().ObjectiveSpec(type={"minimize": 1, "maximize": 2}[obj.type or "minimize"], goal=obj.goal or 0.0,
                               objective_metric_name=obj.objective_metric_name or "",
                               additional_metric_names=obj.additional_metric_names or [])


def experiment_to_proto(exp: Experiment, state: dict[str, Any] | None = None) -> Any:
    pb = _pb()
    spec = exp.spec
    obj = spec.objective
    assert obj is not None
    settings = [pb.AlgorithmSetting(name=s.name or "", value=s.value or "")
                for s in (spec.algorithm.algorithm_settings if spec.algorithm else None) or []]
    if state:
        settings.append(pb.AlgorithmSetting(name=STATE_SETTING, value=json.dumps(state)))
    message = pb.Experiment(name=exp.name, spec=pb.ExperimentSpec(
        objective=_objective_to_proto(obj),
        algorithm=pb.AlgorithmSpec(algorithm_name=spec.algorithm.algorithm_name if spec.algorithm else "",
                                   algorithm_settings=settings),
        parallel_trial_count=spec.parallel_trial_count or 0, max_trial_count=spec.max_trial_count or 0,
    ))
    message.spec.parameter_specs.parameters.extend(_parameter_to_proto(p) for p in spec.parameters or [])
    nas = spec.nas_config
    if nas is not None:
        gc = nas.graph_config
        if gc is not None:
            message.spec.nas_config.graph_config.CopyFrom(pb.GraphConfig(
                num_layers=gc.num_layers or 0, input_sizes=gc.input_sizes or [], output_sizes=gc.output_sizes or []))
        for op in nas.operations or []:
            message.spec.nas_config.operations.operation.append(pb.Operation(
                operation_type=op.operation_type or "",
                parameter_specs=pb.Operation.ParameterSpecs(parameters=[_parameter_to_proto(p) for p in op.parameters or []])))
    return message


def _parameter_to_proto(p: Any) -> Any:
    pb = _pb()
    fs = p.feasible_space
    assert fs is not None
    kinds = {v: k for k, v in _TYPES.items()}
    dists = {v: k for k, v in _DISTRIBUTIONS.items()}
    return pb.ParameterSpec(
        name=p.name or "", parameter_type=kinds.get(p.parameter_type or "", 0),
        feasible_space=pb.FeasibleSpace(max=fs.max or "", min=fs.min or "", list=fs.list_ or [],
                                        step=fs.step or "", distribution=dists.get(fs.distribution or "", 0)),
    )


def trials_to_proto(views: Sequence[TrialView], experiment: Experiment) -> list[Any]:
    """The trials as Katib's controller sends them (``suggestionclient.go`` ConvertTrials):
    each with the experiment's objective in its spec (Katib's Python services read the
    metric's name there) and every metric, valued per its strategy; trials whose metrics
    are unavailable, and early-stopped ones with no observation, are left out."""
    pb = _pb()
    obj = experiment.spec.objective
    assert obj is not None
    name = obj.objective_metric_name or ""
    spec_objective = _objective_to_proto(obj)
    conditions = {v: k for k, v in _STATES.items() if k != 7}
    out = []
    for v in views:
        metrics = dict(v.metrics)
        if v.objective is not None:
            metrics[name] = v.objective
        if v.state == "MetricsUnavailable" or (v.state == "EarlyStopped" and not metrics):
            continue
        trial = pb.Trial(name=v.name, status=pb.TrialStatus(condition=conditions.get(v.state, 7),
                                                            start_time=_go_time(v.start_time),
                                                            completion_time=_go_time(v.completion_time)))
        trial.spec.objective.CopyFrom(spec_objective)
        trial.spec.labels.update(v.labels)
        for param, value in v.parameters.items():
            trial.spec.parameter_assignments.assignments.append(pb.ParameterAssignment(name=param, value=value))
        for metric in [name, *(k for k in metrics if k != name)]:
            if metric in metrics:
                trial.status.observation.metrics.append(pb.Metric(name=metric, value=repr(metrics[metric])))
        out.append(trial)
    return out


# -- the server ------------------------------------------------------------------------


# Algorithms (each an experiment's samplers and caches) a service keeps between requests.
MAX_CACHED = 256


class SuggestionServicer:
    """``api.v1.beta1.Suggestion`` over our algorithm registry."""

    def __init__(self) -> None:
        self._algorithms: dict[tuple[str, str], Algorithm] = {}

    def _algorithm(self, exp: Experiment) -> Algorithm:
        assert exp.spec.algorithm is not None
        name = exp.spec.algorithm.algorithm_name or ""
        key = (exp.name, name)
        if key not in self._algorithms:  # one instance per experiment: samplers keep caches
            self._algorithms[key] = get_algorithm(name)
            while len(self._algorithms) > MAX_CACHED:  # the least recently asked goes: any name may ask
                self._algorithms.pop(next(iter(self._algorithms)))
        self._algorithms[key] = self._algorithms.pop(key)  # the most recent last
        return self._algorithms[key]

    def _checked(self, request_experiment: Any, context: Any,
                 asking: bool = False) -> tuple[Experiment, dict[str, Any], Algorithm]:
        """The request's experiment and algorithm, checked by ``validate`` (or, ``asking``
        for suggestions, by what a request must still pass: ``request_errors``)."""
        import grpc

        try:
            exp, state = experiment_from_proto(request_experiment)
            alg = self._algorithm(exp)
        except (KatibError, ValueError) as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        # A NAS experiment's own rules come first (what Katib's services check of its
        # operations, test_nas_common.py): the algorithm's rules assume them.
        nas = exp.spec.nas_config
        errors = nas_config_errors(nas) if nas is not None else []
        errors = errors or (alg.request_errors(exp) if asking else alg.validate(exp))
        if errors:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "; ".join(str(e) for e in errors))
        return exp, state, alg

    def GetSuggestions(self, request: Any, context: Any) -> Any:  # noqa: N802 - gRPC's name
        import grpc

        pb = _pb()
        exp, state, alg = self._checked(request.experiment, context, asking=True)
        assert exp.spec.objective is not None
        views = trials_from_proto(request.trials, exp.spec.objective.objective_metric_name or "")
        count = max(request.current_request_number, 0)
        most = Limits.from_env().parallel_trials  # what one experiment may run at once: its bound here too
        if count > most:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"current_request_number: at most {most} suggestions a request (KATIB_MAX_PARALLEL_TRIALS); "
                          f"got {count}")
        try:
            assignments: list[Assignment] = alg.suggest(exp, views, count, state)[:count]
        except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
            if not state:
                raise
            # the state is the client's to hand back: one it changed is its mistake
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"{STATE_SETTING}: not a state this algorithm wrote ({type(exc).__name__}: {exc})"[:1000])
        if len(assignments) < count:
            # Katib's controller takes exactly as many as it asked for ("The response contains
            # unexpected trials" otherwise): say how many there are now, and give none.
            context.set_trailing_metadata(((AVAILABLE_KEY, str(len(assignments))),))
            context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                          f"{exp.name}: asked for {count} suggestions, the algorithm "
                          f"{exp.spec.algorithm.algorithm_name if exp.spec.algorithm else ''} has "
                          f"{len(assignments)} to give now"
                          + (" (its search space is exhausted)" if not assignments else ""))
        reply = pb.GetSuggestionsReply()
        for a in assignments:
            item = reply.parameter_assignments.add(trial_name=a.name or "")
            for name, value in a.parameters.items():
                item.assignments.append(pb.ParameterAssignment(name=name, value=value))
            item.labels.update(a.labels)
        settings = list(request.experiment.spec.algorithm.algorithm_settings)
        reply.algorithm.algorithm_name = exp.spec.algorithm.algorithm_name if exp.spec.algorithm else ""
        for s in settings:
            if s.name != STATE_SETTING:
                reply.algorithm.algorithm_settings.append(pb.AlgorithmSetting(name=s.name, value=s.value))
        if state:
            reply.algorithm.algorithm_settings.append(pb.AlgorithmSetting(name=STATE_SETTING, value=json.dumps(state)))
        return reply

    def ValidateAlgorithmSettings(self, request: Any, context: Any) -> Any:  # noqa: N802
        self._checked(request.experiment, context)
        return _pb().ValidateAlgorithmSettingsReply()


def serve(host: str = "127.0.0.1", port: int = 6789, max_workers: int = 4, db_manager: Any = None,
          set_trial_status: Callable[[str], str | None] | None = None) -> Any:
    """Start the gRPC server (Suggestion, EarlyStopping, health; DBManager when given a
    servicer: ``katib server --grpc-port`` does); returns it, already serving."""
    from concurrent import futures

    import grpc
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc

    from ._es_service import EarlyStoppingServicer
    from .grpc import api_pb2_grpc

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers))
    servicer = SuggestionServicer()
    api_pb2_grpc.add_SuggestionServicer_to_server(servicer, server)  # type: ignore[arg-type]
    api_pb2_grpc.add_EarlyStoppingServicer_to_server(  # type: ignore[arg-type]
        EarlyStoppingServicer(set_trial_status), server)
    names = ["", "grpc.health.v1.Health", SERVICE_NAME, "api.v1.beta1.Suggestion", "api.v1.beta1.EarlyStopping"]
    if db_manager is not None:
        api_pb2_grpc.add_DBManagerServicer_to_server(db_manager, server)
        names.append("api.v1.beta1.DBManager")
    checker = _health_servicer(health, db_manager, names)
    for name in names:
        checker.set(name, health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(checker, server)
    bound = server.add_insecure_port(f"{host}:{port}")
    if not bound:
        raise KatibError(f"cannot listen on {host}:{port}")
    server.start()
    server.bound_port = bound  # type: ignore[attr-defined]
    return server


def _health_servicer(health: Any, db_manager: Any, names: Sequence[str]) -> Any:
    """gRPC health as Katib answers it. A suggestion service alone answers an unknown
    service name NOT_FOUND (``base_health_service.py``). With the DBManager on the port,
    Katib's ``db-manager`` answers an unknown name UNKNOWN, and probes its database
    (``SELECT 1``): NOT_SERVING, as an error, while the database does not answer."""
    import grpc

    class Health(health.HealthServicer):  # type: ignore[misc, name-defined]
        def Check(self, request: Any, context: Any) -> Any:  # noqa: N802
            if db_manager is None:
                return super().Check(request, context)
            if request.service not in names:
                context.abort(grpc.StatusCode.UNKNOWN,
                              "grpc.health.v1.Health can only be accepted if you specify service name.")
            why = db_manager.probe()
            if why is not None:
                context.abort(grpc.StatusCode.UNKNOWN, f"Failed to execute `SELECT 1` probe: {why}")
            return super().Check(request, context)

        def Watch(self, request: Any, context: Any, send_response_callback: Any = None) -> Any:  # noqa: N802
            if db_manager is not None:  # Katib's health.proto has Check alone: it could not say the database
                context.abort(grpc.StatusCode.UNIMPLEMENTED, "Watch is not implemented: use Check")
            return super().Watch(request, context, send_response_callback)

    return Health()


# -- the client ------------------------------------------------------------------------


def reply_problem(experiment: Experiment, assignments: Sequence[Assignment], count: int) -> str | None:
    """Why a remote service's answer is not one the controller may run (None: it may):
    more suggestions than asked (Katib's controller refuses them too: "The response contains
    unexpected trials"), a trial name that is not a name, or a value outside its parameter's
    feasible space. Parameters the experiment does not declare (a NAS service's
    architecture) are kept, as Katib keeps them."""
    from katib.names import name_errors

    if len(assignments) > count:
        return f"answered {len(assignments)} suggestions where {count} were asked for"
    for a in assignments:
        if a.name is not None and name_errors("trial", a.name, "trial_name"):
            return f"trial_name {a.name!r} is not a valid name (a DNS-1123 label)"
        for p in experiment.spec.parameters or []:
            value = a.parameters.get(p.name or "")
            if value is None:
                return f"no value for parameter {p.name!r}"
            why = _outside(p, value)
            if why:
                return f"parameter {p.name!r}: {value!r} {why}"
    return None


def _outside(p: Any, value: str) -> str | None:
    fs = p.feasible_space
    if p.parameter_type in ("categorical", "discrete"):
        listed = [str(v) for v in (fs.list_ or [])]
        if value in listed:
            return None
        try:  # a discrete number written another way (1 for 1.0)
            if p.parameter_type == "discrete" and any(float(v) == float(value) for v in listed):
                return None
        except ValueError:
            pass
        return "is not one of the feasible list"
    try:
        number = float(value)
    except ValueError:
        return "is not a number"
    if not math.isfinite(number) or (p.parameter_type == "int" and not number.is_integer()):
        return "is not a finite number of the parameter's type"
    lo = float(fs.min) if fs.min is not None else -math.inf
    hi = float(fs.max) if fs.max is not None else math.inf
    return None if lo <= number <= hi else f"is outside [{fs.min}, {fs.max}]"


class RemoteAlgorithm(Algorithm):
    """An algorithm served over Katib's gRPC API at ``address`` (ours or Katib's).

    >>> alg = RemoteAlgorithm("127.0.0.1:6789", "tpe")  # doctest: +SKIP
    """

    def __init__(self, address: str, name: str, timeout: float = 600.0) -> None:
        import grpc

        from .grpc import api_pb2_grpc

        self.address = address
        self.name = name  # type: ignore[misc]
        # Served elsewhere, planned as the local one of that name is (Katib's hyperband, PBT).
        self.plans_trials = name in ("hyperband", "pbt")  # type: ignore[misc]
        self.timeout = timeout
        self._channel = grpc.insecure_channel(address)
        self._stub = api_pb2_grpc.SuggestionStub(self._channel)

    def validate(self, experiment: Experiment) -> list[Any]:
        import grpc

        from katib.errors import FieldError

        try:
            self._stub.ValidateAlgorithmSettings(
                _pb().ValidateAlgorithmSettingsRequest(experiment=experiment_to_proto(experiment)), timeout=self.timeout)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
                return [FieldError("spec.algorithm", f"the suggestion service at {self.address} refused it: {exc.details()}")]
            raise KatibError(f"suggestion service at {self.address}: {exc.code().name}: {exc.details()}") from None
        return []

    def suggest(self, experiment: Experiment, trials: Sequence[TrialView], count: int,
                state: dict[str, Any] | None = None) -> list[Assignment]:
        import grpc

        obj = experiment.spec.objective
        assert obj is not None
        remote_state = (state or {}).get("remote")
        request = _pb().GetSuggestionsRequest(
            experiment=experiment_to_proto(experiment, remote_state),
            trials=trials_to_proto(trials, experiment),
            current_request_number=count, total_request_number=len(trials) + count,
        )
        try:
            reply = self._stub.GetSuggestions(request, timeout=self.timeout)
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.FAILED_PRECONDITION:
                raise KatibError(f"suggestion service at {self.address}: {exc.code().name}: {exc.details()}") from None
            # Fewer than asked: ask again for as many as the service has (ours says how many).
            available = dict(exc.trailing_metadata() or ()).get(AVAILABLE_KEY)  # type: ignore[attr-defined]
            if not available or not 0 < int(available) < count:
                return []
            return self.suggest(experiment, trials, int(available), state)
        for s in reply.algorithm.algorithm_settings:
            if s.name == STATE_SETTING and state is not None:
                state["remote"] = json.loads(s.value)
        out = [Assignment({a.name: a.value for a in item.assignments}, name=item.trial_name or None,
                          labels=dict(item.labels)) for item in reply.parameter_assignments]
        problem = reply_problem(experiment, out, count)
        if problem:
            raise KatibError(f"suggestion service at {self.address}: {problem}")
        return out
