"""Katib's gRPC Suggestion API, round trip: Katib-shaped requests to our server, and the
controller using a remote service instead of a local algorithm."""

from __future__ import annotations

from contextlib import contextmanager

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from katib.controller import Controller, admit_remote
from suggestion import serve
from suggestion.grpc import api_pb2 as pb
from suggestion.grpc import api_pb2_grpc
from tests.conftest import experiment


@pytest.fixture(scope="module")
def server():
    s = serve("127.0.0.1", 0)
    yield f"127.0.0.1:{s.bound_port}"
    s.stop(grace=0)


def katib_experiment(algorithm: str, settings: dict[str, str] | None = None) -> pb.Experiment:
    """What Katib's controller sends for a two-parameter experiment."""
    spec = pb.ExperimentSpec(
        objective=pb.ObjectiveSpec(type=pb.MAXIMIZE, goal=0.99, objective_metric_name="Validation-accuracy",
                                   additional_metric_names=["Train-accuracy"]),
        algorithm=pb.AlgorithmSpec(algorithm_name=algorithm,
                                   algorithm_settings=[pb.AlgorithmSetting(name=k, value=v) for k, v in (settings or {}).items()]),
        parallel_trial_count=3, max_trial_count=12,
    )
    spec.parameter_specs.parameters.extend([
        pb.ParameterSpec(name="lr", parameter_type=pb.DOUBLE,
                         feasible_space=pb.FeasibleSpace(min="0.001", max="0.1", distribution=pb.LOG_UNIFORM)),
        pb.ParameterSpec(name="optimizer", parameter_type=pb.CATEGORICAL, feasible_space=pb.FeasibleSpace(list=["sgd", "adam"])),
    ])
    return pb.Experiment(name="random", spec=spec)


def katib_trial(name: str, lr: str, opt: str, accuracy: str | None, condition=pb.TrialStatus.SUCCEEDED) -> pb.Trial:
    t = pb.Trial(name=name, status=pb.TrialStatus(condition=condition))
    t.spec.parameter_assignments.assignments.extend([pb.ParameterAssignment(name="lr", value=lr),
                                                     pb.ParameterAssignment(name="optimizer", value=opt)])
    if accuracy is not None:
        t.status.observation.metrics.append(pb.Metric(name="Validation-accuracy", value=accuracy))
    return t


def test_health_check_serving(server):
    with grpc.insecure_channel(server) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service="manager.v1beta1.Suggestion"))
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.parametrize("algorithm", ["random", "tpe", "sobol"])
def test_get_suggestions_returns_exactly_the_requested_number(server, algorithm):
    trials = [katib_trial("random-aaaa", "0.01", "adam", "0.95"), katib_trial("random-bbbb", "0.05", "sgd", "0.90"),
              katib_trial("random-cccc", "0.02", "sgd", None, pb.TrialStatus.RUNNING)]
    with grpc.insecure_channel(server) as channel:
        reply = api_pb2_grpc.SuggestionStub(channel).GetSuggestions(pb.GetSuggestionsRequest(
            experiment=katib_experiment(algorithm), trials=trials, current_request_number=3, total_request_number=6))
    assert len(reply.parameter_assignments) == 3
    for item in reply.parameter_assignments:
        values = {a.name: a.value for a in item.assignments}
        assert 0.001 <= float(values["lr"]) <= 0.1 and values["optimizer"] in ("sgd", "adam")
    assert reply.algorithm.algorithm_name == algorithm


def test_invalid_settings_are_invalid_argument_naming_the_setting(server):
    with grpc.insecure_channel(server) as channel, pytest.raises(grpc.RpcError) as info:
        api_pb2_grpc.SuggestionStub(channel).ValidateAlgorithmSettings(
            pb.ValidateAlgorithmSettingsRequest(experiment=katib_experiment("tpe", {"n_ei_candidates": "0"})))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "n_ei_candidates must be >= 1 (got 0)" in info.value.details()
    with grpc.insecure_channel(server) as channel:
        api_pb2_grpc.SuggestionStub(channel).ValidateAlgorithmSettings(
            pb.ValidateAlgorithmSettingsRequest(experiment=katib_experiment("tpe", {"n_ei_candidates": "12"})))


def test_unknown_algorithm_is_invalid_argument(server):
    with grpc.insecure_channel(server) as channel, pytest.raises(grpc.RpcError) as info:
        api_pb2_grpc.SuggestionStub(channel).ValidateAlgorithmSettings(
            pb.ValidateAlgorithmSettingsRequest(experiment=katib_experiment("annealing")))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "unknown algorithm 'annealing'" in info.value.details()


def _hyperband_request(settings: dict[str, str]) -> pb.GetSuggestionsRequest:
    """Katib's test_hyperband_service.py test_get_suggestion request: r_l=10 and a
    resource_name (``--num-epochs``) that names no parameter, no parallelTrialCount."""
    spec = pb.ExperimentSpec(
        algorithm=pb.AlgorithmSpec(algorithm_name="hyperband",
                                   algorithm_settings=[pb.AlgorithmSetting(name=k, value=v) for k, v in settings.items()]),
        objective=pb.ObjectiveSpec(type=pb.MAXIMIZE, goal=0.9))
    spec.parameter_specs.parameters.extend([
        pb.ParameterSpec(name="param-1", parameter_type=pb.INT, feasible_space=pb.FeasibleSpace(max="5", min="1")),
        pb.ParameterSpec(name="param-2", parameter_type=pb.CATEGORICAL,
                         feasible_space=pb.FeasibleSpace(list=["cat1", "cat2", "cat3"])),
        pb.ParameterSpec(name="param-3", parameter_type=pb.DISCRETE, feasible_space=pb.FeasibleSpace(list=["3", "2", "6"])),
        pb.ParameterSpec(name="param-4", parameter_type=pb.DOUBLE, feasible_space=pb.FeasibleSpace(max="5", min="1")),
    ])
    trials = []
    for name, values, metrics in (("test-asfjh", ("2", "cat1", "2", "3.44"), ("435", "5643")),
                                  ("test-234hs", ("3", "cat2", "6", "4.44"), ("123", "3028"))):
        t = pb.Trial(name=name, spec=pb.TrialSpec(objective=pb.ObjectiveSpec(
            type=pb.MAXIMIZE, goal=0.9, objective_metric_name="metric-2")))
        t.spec.parameter_assignments.assignments.extend(
            pb.ParameterAssignment(name=f"param-{i}", value=v) for i, v in enumerate(values, 1))
        t.status.observation.metrics.extend([pb.Metric(name="metric=1", value=metrics[0]),
                                             pb.Metric(name="metric=2", value=metrics[1])])
        trials.append(t)
    return pb.GetSuggestionsRequest(experiment=pb.Experiment(name="test", spec=spec), trials=trials,
                                    current_request_number=2)


def test_katibs_hyperband_request_is_answered(server):
    """test_hyperband_service.py test_get_suggestion, over gRPC: Katib's GetSuggestions does
    not validate (ValidateAlgorithmSettings does, and refuses this experiment); the size of
    the plan is still bounded."""
    with grpc.insecure_channel(server) as channel:
        stub = api_pb2_grpc.SuggestionStub(channel)
        reply = stub.GetSuggestions(_hyperband_request({"r_l": "10", "resource_name": "--num-epochs"}))
        assert len(reply.parameter_assignments) == 2
        assert all({a.name for a in p.assignments} == {"param-1", "param-2", "param-3", "param-4"}
                   for p in reply.parameter_assignments)
        with pytest.raises(grpc.RpcError) as refused:
            stub.ValidateAlgorithmSettings(pb.ValidateAlgorithmSettingsRequest(
                experiment=_hyperband_request({"r_l": "10", "resource_name": "--num-epochs"}).experiment))
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(grpc.RpcError) as bounded:
            stub.GetSuggestions(_hyperband_request({"r_l": "1e300", "eta": "1.5", "resource_name": "--num-epochs"}))
        assert bounded.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "brackets" in bounded.value.details()
        # 9 brackets, but the first starts 10^8 configurations, sampled at once (a MemoryError
        # past 1 GB, from a 200-byte request): as many as an experiment may run at once
        with pytest.raises(grpc.RpcError) as wide:
            stub.GetSuggestions(_hyperband_request({"r_l": "1e9", "eta": "10", "resource_name": "--num-epochs"}))
        assert wide.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "start the first bracket with 100000000 configurations; at most 1000" in wide.value.details()
        # a plan handed back changed: refused, not a bracket of 10^8 rungs
        bad = _hyperband_request({"r_l": "10", "resource_name": "--num-epochs"})
        bad.experiment.spec.algorithm.algorithm_settings.append(pb.AlgorithmSetting(
            name="katib_state", value='{"bracket": -100000000, "rung": 0, "queue": [], "members": []}'))
        with pytest.raises(grpc.RpcError) as changed:
            stub.GetSuggestions(bad)
        assert changed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "katib_state: not a state this algorithm wrote" in changed.value.details()


def test_a_service_keeps_a_bounded_number_of_experiments_algorithms(monkeypatch):
    """One algorithm instance per experiment name, never let go: any caller could grow the
    service by 10 KB a name. The least recently asked goes past MAX_CACHED."""
    import suggestion._service as service

    monkeypatch.setattr(service, "MAX_CACHED", 3)
    servicer = service.SuggestionServicer()
    from katib.spec import apply_defaults, parse_experiment

    for name in ("a", "b", "c", "a", "d"):
        servicer._algorithm(apply_defaults(parse_experiment(experiment(name=name))))
    assert [key[0] for key in servicer._algorithms] == ["c", "a", "d"]


def test_algorithm_state_travels_in_the_settings(server):
    exp = katib_experiment("hyperband", {"r_l": "9", "resource_name": "epochs", "eta": "3"})
    exp.spec.parallel_trial_count = 9
    exp.spec.parameter_specs.parameters.append(
        pb.ParameterSpec(name="epochs", parameter_type=pb.INT, feasible_space=pb.FeasibleSpace(min="1", max="9")))
    with grpc.insecure_channel(server) as channel:
        stub = api_pb2_grpc.SuggestionStub(channel)
        first = stub.GetSuggestions(pb.GetSuggestionsRequest(experiment=exp, current_request_number=9))
        assert len(first.parameter_assignments) == 9 and all(i.trial_name for i in first.parameter_assignments)
        state = [s for s in first.algorithm.algorithm_settings if s.name == "katib_state"]
        assert state
        # Katib sends the reply's settings back with the finished rung.
        del exp.spec.algorithm.algorithm_settings[:]
        exp.spec.algorithm.algorithm_settings.extend(first.algorithm.algorithm_settings)
        done = []
        for i, item in enumerate(first.parameter_assignments):
            t = pb.Trial(name=item.trial_name, status=pb.TrialStatus(condition=pb.TrialStatus.SUCCEEDED))
            t.spec.parameter_assignments.assignments.extend(item.assignments)
            t.status.observation.metrics.append(pb.Metric(name="Validation-accuracy", value=str(i / 10)))
            done.append(t)
        # The next rung has 3: asked for 9, the service says so instead of answering 3 (Katib's
        # controller refuses a reply of another length), and answers a request for 3.
        with pytest.raises(grpc.RpcError) as short:
            stub.GetSuggestions(pb.GetSuggestionsRequest(experiment=exp, trials=done, current_request_number=9))
        assert short.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert dict(short.value.trailing_metadata())["katib-available"] == "3"
        second = stub.GetSuggestions(pb.GetSuggestionsRequest(experiment=exp, trials=done, current_request_number=3))
    epochs = {a.value for item in second.parameter_assignments for a in item.assignments if a.name == "epochs"}
    assert len(second.parameter_assignments) == 3 and epochs == {"3"}


def test_controller_uses_a_remote_service(server, store, tmp_path):
    doc = experiment(algorithm={"algorithmName": "tpe", "algorithmSettings": [{"name": "random_state", "value": "5"}]})
    ctl = Controller(store, runs_root=tmp_path / "runs", tick=0.05, suggestion_address=server)
    rec, _ = ctl.submit(admit_remote(doc, server), tmp_path)
    status = ctl.run(rec.namespace, rec.name).to_dict()
    assert status["trialsSucceeded"] == 4
    bad = experiment(algorithm={"algorithmName": "tpe", "algorithmSettings": [{"name": "gamma", "value": "2"}]})
    from katib.errors import ValidationError

    with pytest.raises(ValidationError, match="refused it: .*gamma must be < 1"):
        admit_remote(bad, server)


def test_enas_over_grpc_reads_katibs_nas_config(server):
    from suggestion._service import experiment_to_proto
    from tests.nas_tests.conftest import enas_experiment

    message = experiment_to_proto(enas_experiment())
    assert message.spec.nas_config.graph_config.input_sizes == [8, 8, 1]
    with grpc.insecure_channel(server) as channel:
        stub = api_pb2_grpc.SuggestionStub(channel)
        stub.ValidateAlgorithmSettings(pb.ValidateAlgorithmSettingsRequest(experiment=message))
        reply = stub.GetSuggestions(pb.GetSuggestionsRequest(experiment=message, current_request_number=2))
    assert len(reply.parameter_assignments) == 2
    names = {a.name for a in reply.parameter_assignments[0].assignments}
    assert names == {"architecture", "nn_config"}


class _Misbehaving(api_pb2_grpc.SuggestionServicer):
    """A remote service whose answers a controller must not run."""

    answer: list[tuple[str, str]] = []  # (trial_name, x) per suggestion

    def ValidateAlgorithmSettings(self, request, context):  # noqa: N802 - gRPC's name
        return pb.ValidateAlgorithmSettingsReply()

    def GetSuggestions(self, request, context):  # noqa: N802
        reply = pb.GetSuggestionsReply()
        for name, x in self.answer:
            item = reply.parameter_assignments.add(trial_name=name)
            item.assignments.append(pb.ParameterAssignment(name="x", value=x))
            item.labels["katib.kubeflow.org/experiment"] = "someone-else"
        return reply


@contextmanager
def _misbehaving(answer: list[tuple[str, str]]):
    """The address of a ``_Misbehaving`` service that answers ``answer``, while it serves."""
    from concurrent import futures

    _Misbehaving.answer = answer
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    api_pb2_grpc.add_SuggestionServicer_to_server(_Misbehaving(), server)
    address = f"127.0.0.1:{server.add_insecure_port('127.0.0.1:0')}"
    server.start()
    try:
        yield address
    finally:
        server.stop(0)


@pytest.mark.parametrize(("answer", "problem"), [
    ([("", "0.5")] * 12, "answered 12 suggestions where 2 were asked for"),
    ([("", "-5"), ("", "0.5")], "parameter 'x': '-5' is outside"),
    ([("", "1e308"), ("", "0.5")], "is outside"),
    ([("", "nan"), ("", "0.5")], "is not a finite number"),
    ([("Not_A_Name", "0.5")], "trial_name 'Not_A_Name' is not a valid name"),
    ([("checkpoints", "0.5")], "the algorithm named a new trial 'checkpoints', which is taken"),
])
def test_a_remote_services_answer_is_checked_before_anything_runs(store, tmp_path, answer, problem):
    """It answered 12 trials to a request for 2 (past maxTrialCount), values outside the
    space, names that were not names or were the experiment's own folder: all were run."""
    from katib.errors import KatibError

    with _misbehaving(answer) as address:
        ctl = Controller(store, runs_root=tmp_path / "runs", tick=0.05, suggestion_address=address)
        rec, _ = ctl.submit(admit_remote(experiment(), address), tmp_path)
        with pytest.raises(KatibError, match=problem.replace("(", r"\(").replace("[", r"\[")):
            ctl.run(rec.namespace, rec.name)
        assert store.list_trials(rec.id) == []


def test_get_suggestions_asks_for_no_more_than_an_experiment_runs_at_once(server):
    """2**31 - 1 suggestions in one request made the service build them all (gigabytes)."""
    stub = api_pb2_grpc.SuggestionStub(grpc.insecure_channel(server))
    with pytest.raises(grpc.RpcError) as info:
        stub.GetSuggestions(pb.GetSuggestionsRequest(experiment=katib_experiment("random"),
                                                     current_request_number=2**31 - 1), timeout=30)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "at most 1000 suggestions a request (KATIB_MAX_PARALLEL_TRIALS)" in info.value.details()


def test_a_remote_service_cannot_relabel_a_trial_as_another_experiments(store, tmp_path):
    with _misbehaving([("", "0.5"), ("", "0.6")]) as address:
        ctl = Controller(store, runs_root=tmp_path / "runs", tick=0.05, suggestion_address=address)
        rec, _ = ctl.submit(admit_remote(experiment(maxTrialCount=2), address), tmp_path)
        ctl.run(rec.namespace, rec.name)
        assert {t.labels["katib.kubeflow.org/experiment"] for t in store.list_trials(rec.id)} == {rec.name}


def test_a_remote_value_is_checked_against_each_kind_of_parameter():
    from katib.controller import admit
    from suggestion import Assignment
    from suggestion._service import reply_problem

    params = [{"name": "x", "parameterType": "double", "feasibleSpace": {"min": "0", "max": "1"}},
              {"name": "n", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "4"}},
              {"name": "opt", "parameterType": "categorical", "feasibleSpace": {"list": ["sgd", "adam"]}},
              {"name": "bs", "parameterType": "discrete", "feasibleSpace": {"list": ["16", "32"]}}]
    doc = experiment(parameters=params)
    doc["spec"]["trialTemplate"]["trialParameters"] = [{"name": p["name"], "reference": p["name"]} for p in params]
    doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]["command"] = [
        "echo", *[f"${{trialParameters.{p['name']}}}" for p in params]]
    exp = admit(doc)
    good = {"x": "0.5", "n": "2", "opt": "adam", "bs": "32.0"}
    assert reply_problem(exp, [Assignment(good)], 1) is None
    for change, problem in (({"n": "2.5"}, "not a finite number"), ({"opt": "rmsprop"}, "not one of the feasible list"),
                            ({"bs": "64"}, "not one of the feasible list"), ({"x": "abc"}, "is not a number")):
        assert problem in (reply_problem(exp, [Assignment({**good, **change})], 1) or ""), change


def test_trials_go_to_a_remote_service_as_katibs_controller_sends_them():
    """suggestionclient.go ConvertTrials: each trial carries the experiment's objective in its
    spec (Katib's Python services read the metric's name there: without it they skip every
    trial, and learn nothing) and every metric; a trial whose metrics are unavailable, and an
    early-stopped one with no observation, are left out."""
    from katib.spec import apply_defaults, parse_experiment
    from suggestion import TrialView
    from suggestion._service import trials_from_proto, trials_to_proto

    exp = apply_defaults(parse_experiment(experiment(objective={
        "type": "minimize", "goal": 0.01, "objectiveMetricName": "loss", "additionalMetricNames": ["accuracy"]})))
    views = [
        TrialView("done", {"x": "0.5"}, "Succeeded", 0.25, {"loss": 0.25, "accuracy": 0.9}),
        TrialView("no-metrics", {"x": "0.6"}, "MetricsUnavailable"),
        TrialView("stopped-bare", {"x": "0.7"}, "EarlyStopped"),
        TrialView("stopped", {"x": "0.8"}, "EarlyStopped", 0.5, {"loss": 0.5}),
        TrialView("running", {"x": "0.9"}, "Running"),
    ]
    sent = trials_to_proto(views, exp)
    assert [t.name for t in sent] == ["done", "stopped", "running"]
    done = sent[0]
    assert (done.spec.objective.objective_metric_name, done.spec.objective.type, done.spec.objective.goal,
            list(done.spec.objective.additional_metric_names)) == ("loss", pb.MINIMIZE, 0.01, ["accuracy"])
    assert {m.name: float(m.value) for m in done.status.observation.metrics} == {"loss": 0.25, "accuracy": 0.9}
    assert done.status.condition == pb.TrialStatus.SUCCEEDED and sent[1].status.condition == pb.TrialStatus.EARLYSTOPPED
    # Back, with no objective name in the experiment (as Katib's tests send it): the trial's own.
    back = trials_from_proto(sent, "")
    assert [(v.name, v.objective, v.metrics) for v in back] == [
        ("done", 0.25, {"loss": 0.25, "accuracy": 0.9}), ("stopped", 0.5, {"loss": 0.5}), ("running", None, {})]


def test_a_remote_service_gets_each_trials_labels_and_times():
    """ConvertTrials sends trial.Spec.Labels (Katib's PBT service reads its generation and
    parent there) and the start and completion times (``2006-01-02T15:04:05Z``); they were
    left out, so Katib's PBT behind a remote service saw no population."""
    from katib.spec import apply_defaults, parse_experiment
    from suggestion import TrialView
    from suggestion._service import trials_from_proto, trials_to_proto

    exp = apply_defaults(parse_experiment(experiment()))
    labels = {"pbt.suggestion.katib.kubeflow.org/generation": "2", "pbt.suggestion.katib.kubeflow.org/parent": "p-1"}
    views = [TrialView("done", {"x": "0.5"}, "Succeeded", 0.25, {"loss": 0.25}, labels=labels,
                       start_time=1767225600.0, completion_time=1767225661.5),
             TrialView("new", {"x": "0.6"}, "Created")]
    done, new = trials_to_proto(views, exp)
    assert dict(done.spec.labels) == labels
    assert (done.status.start_time, done.status.completion_time) == ("2026-01-01T00:00:00Z", "2026-01-01T00:01:01Z")
    assert (new.status.start_time, new.status.completion_time, dict(new.spec.labels)) == ("", "", {})
    back = trials_from_proto([done, new], "loss")
    assert (back[0].labels, back[0].start_time, back[0].completion_time) == (labels, 1767225600.0, 1767225661.0)
    assert (back[1].labels, back[1].start_time) == ({}, None)


def _nas_experiment(algorithm: str, operation: pb.Operation) -> pb.Experiment:
    exp = pb.Experiment(name="nas", spec=pb.ExperimentSpec(
        objective=pb.ObjectiveSpec(type=pb.MAXIMIZE, objective_metric_name="Validation-Accuracy"),
        algorithm=pb.AlgorithmSpec(algorithm_name=algorithm), parallel_trial_count=1, max_trial_count=2))
    graph = exp.spec.nas_config.graph_config
    graph.num_layers = 2
    graph.input_sizes.extend([8, 8, 1])
    graph.output_sizes.extend([10])
    exp.spec.nas_config.operations.operation.append(operation)
    return exp


@pytest.mark.parametrize("algorithm", ["enas", "darts"])
@pytest.mark.parametrize(("operation_type", "parameter_type", "refused"), [
    ("convolution", pb.CATEGORICAL, None),
    ("", pb.CATEGORICAL, "spec.nasConfig.operations[0].operationType: is required"),
    ("convolution", pb.UNKNOWN_TYPE, "spec.nasConfig.operations[0].parameters[0].parameterType: must be one of"),
])
def test_nas_operations_are_validated_as_katibs_services_do(server, algorithm, operation_type, parameter_type, refused):
    """test_nas_common.py test_validate_operations: an operation with no type, or a parameter
    with no type, is INVALID_ARGUMENT at ValidateAlgorithmSettings (it was accepted, and
    GetSuggestions then failed as UNKNOWN)."""
    op = pb.Operation(operation_type=operation_type)
    op.parameter_specs.parameters.append(pb.ParameterSpec(name="filter_size", parameter_type=parameter_type,
                                                          feasible_space=pb.FeasibleSpace(list=["3", "5"])))
    with grpc.insecure_channel(server) as channel:
        stub = api_pb2_grpc.SuggestionStub(channel)
        request = pb.ValidateAlgorithmSettingsRequest(experiment=_nas_experiment(algorithm, op))
        if refused is None:
            stub.ValidateAlgorithmSettings(request)
            return
        for call in (lambda: stub.ValidateAlgorithmSettings(request),
                     lambda: stub.GetSuggestions(pb.GetSuggestionsRequest(experiment=request.experiment,
                                                                          current_request_number=1))):
            with pytest.raises(grpc.RpcError) as error:
                call()
            assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT and refused in error.value.details()
