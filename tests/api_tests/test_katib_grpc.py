"""Katib's three gRPC services on the server's gRPC port, over a real channel: DBManager
over our store (Katib's ``cmd/db-manager/v1beta1/main_test.go`` cases, then our trials),
EarlyStopping's medianstop (``test/unit/v1beta1/earlystopping/test_medianstop_service.py``,
plus the rule itself computed from logs read back from the DBManager), and Suggestion's
exact count (``pkg/controller.v1beta1/suggestion/suggestionclient/suggestionclient.go``
refuses a reply of another length)."""

from __future__ import annotations

import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from suggestion.grpc import api_pb2 as pb
from suggestion.grpc import api_pb2_grpc
from tests.api_tests.conftest import LiveServer
from tests.conftest import experiment, python_command

DB_TEST = "cmd/db-manager/v1beta1/main_test.go"
ES_TEST = "test/unit/v1beta1/earlystopping/test_medianstop_service.py"
STAMP = "2019-02-03T04:05:06+09:00"  # main_test.go's timestamp


@pytest.fixture(scope="module")
def grpc_server(tmp_path_factory):
    from katib.store import Store

    tmp = tmp_path_factory.mktemp("grpc")
    store = Store(str(tmp / "katib.db"))
    with LiveServer(store, tmp, tick=0.05, grpc_address=("127.0.0.1", 0)) as server:
        server.grpc = f"127.0.0.1:{server.app.state.grpc_port}"
        server.tmp = tmp
        yield server
    store.close()


def db(server) -> api_pb2_grpc.DBManagerStub:
    return api_pb2_grpc.DBManagerStub(grpc.insecure_channel(server.grpc))


def logs(*metrics: tuple[str, str], stamp: str = STAMP) -> pb.ObservationLog:
    return pb.ObservationLog(metric_logs=[pb.MetricLog(time_stamp=stamp, metric=pb.Metric(name=n, value=v))
                                          for n, v in metrics])


def rpc_error(call, *args, **kwargs) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call(*args, **kwargs)
    return info.value


# -- DBManager: Katib's main_test.go, against the store ----------------------------------

def test_db_manager_report_get_delete_of_a_katib_trial(grpc_server):
    """TestReportObservationLog, TestGetObservationLog, TestDeleteObservationLog: a trial
    this store does not hold (a Katib control plane's) is kept by its name."""
    stub = db(grpc_server)
    four = logs(("f1_score", "88.95"), ("loss", "0.5"), ("precision", "88.7"), ("recall", "89.2"))
    stub.ReportObservationLog(pb.ReportObservationLogRequest(trial_name="test1-trial1", observation_log=four))
    got = stub.GetObservationLog(pb.GetObservationLogRequest(
        trial_name="test1-trial1", start_time="2019-02-03T03:05:06+09:00", end_time="2019-02-03T05:05:06+09:00"))
    assert [(m.metric.name, m.metric.value) for m in got.observation_log.metric_logs] == [
        ("f1_score", "88.95"), ("loss", "0.5"), ("precision", "88.7"), ("recall", "89.2")]
    # Katib's PostgreSQL backend writes times back as RFC3339Nano in UTC.
    assert {m.time_stamp for m in got.observation_log.metric_logs} == {"2019-02-02T19:05:06Z"}
    only = stub.GetObservationLog(pb.GetObservationLogRequest(trial_name="test1-trial1", metric_name="loss"))
    assert [m.metric.value for m in only.observation_log.metric_logs] == ["0.5"]
    before = stub.GetObservationLog(pb.GetObservationLogRequest(trial_name="test1-trial1",
                                                                end_time="2019-02-03T04:05:05+09:00"))
    assert not before.observation_log.metric_logs
    stub.DeleteObservationLog(pb.DeleteObservationLogRequest(trial_name="test1-trial1"))
    empty = stub.GetObservationLog(pb.GetObservationLogRequest(trial_name="test1-trial1"))
    assert not empty.observation_log.metric_logs


def test_db_manager_skips_logs_without_time_and_refuses_bad_times(grpc_server):
    stub = db(grpc_server)
    mixed = logs(("loss", "0.3"))
    mixed.metric_logs.append(pb.MetricLog(time_stamp="", metric=pb.Metric(name="loss", value="0.1")))
    stub.ReportObservationLog(pb.ReportObservationLogRequest(trial_name="test1-trial2", observation_log=mixed))
    got = stub.GetObservationLog(pb.GetObservationLogRequest(trial_name="test1-trial2"))
    assert [m.metric.value for m in got.observation_log.metric_logs] == ["0.3"]
    bad = rpc_error(stub.ReportObservationLog, pb.ReportObservationLogRequest(
        trial_name="test1-trial2", observation_log=logs(("loss", "1"), stamp="yesterday")))
    assert bad.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "metric_logs[0].time_stamp: Error parsing start time yesterday" in bad.details()
    bad = rpc_error(stub.GetObservationLog, pb.GetObservationLogRequest(trial_name="test1-trial2", end_time="2019"))
    assert bad.code() == grpc.StatusCode.INVALID_ARGUMENT and bad.details().startswith("end_time: ")
    # a time past the years 1-9999 in UTC was stored, and every read of the trial's log then failed (UNKNOWN)
    for stamp in ("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"):
        bad = rpc_error(stub.ReportObservationLog, pb.ReportObservationLogRequest(
            trial_name="test1-trial2", observation_log=logs(("loss", "1"), stamp=stamp)))
        assert bad.code() == grpc.StatusCode.INVALID_ARGUMENT and "outside the years 1 to 9999" in bad.details()
    zero = logs(("loss", "0.4"), stamp="0001-01-01T00:00:00Z")  # Katib's zero time is a time
    stub.ReportObservationLog(pb.ReportObservationLogRequest(trial_name="test1-trial2", observation_log=zero))
    got = stub.GetObservationLog(pb.GetObservationLogRequest(trial_name="test1-trial2"))
    assert [m.metric.value for m in got.observation_log.metric_logs] == ["0.4", "0.3"]


def test_a_foreign_trials_log_holds_and_answers_a_bounded_number_of_rows(grpc_server, monkeypatch):
    """A trial this store does not hold took any number of rows, from any local process, and
    GetObservationLog built a reply of all of them."""
    import katib._dbmanager as dbmanager

    monkeypatch.setattr(dbmanager, "EXTERNAL_ROWS", 5)
    stub = db(grpc_server)
    stub.ReportObservationLog(pb.ReportObservationLogRequest(
        trial_name="test1-capped", observation_log=logs(*[("loss", str(i)) for i in range(4)])))
    full = rpc_error(stub.ReportObservationLog, pb.ReportObservationLogRequest(
        trial_name="test1-capped", observation_log=logs(("loss", "4"), ("loss", "5"))))
    assert full.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "holds 4 metric logs, and these 2 would pass the limit of 5 a trial" in full.details()
    stub.ReportObservationLog(pb.ReportObservationLogRequest(trial_name="test1-capped",
                                                             observation_log=logs(("loss", "4"))))
    monkeypatch.setattr(dbmanager, "EXTERNAL_ROWS", 3)  # a reply gives at most the cap, the first rows
    got = stub.GetObservationLog(pb.GetObservationLogRequest(trial_name="test1-capped"))
    assert [m.metric.value for m in got.observation_log.metric_logs] == ["0", "1", "2"]


def test_health_answers_for_each_service(grpc_server):
    with grpc.insecure_channel(grpc_server.grpc) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for name in ("grpc.health.v1.Health", "api.v1.beta1.DBManager", "api.v1.beta1.EarlyStopping",
                     "api.v1.beta1.Suggestion"):
            assert health.Check(health_pb2.HealthCheckRequest(service=name)).status == health_pb2.HealthCheckResponse.SERVING


def test_health_answers_as_katibs_db_manager(tmp_path):
    """``cmd/db-manager/v1beta1/main.go``'s Check: an unknown service name is an UNKNOWN
    error, and a database that does not answer ``SELECT 1`` is an error, not SERVING."""
    from katib._dbmanager import DBManagerServicer
    from katib.store import Store
    from suggestion import serve

    path = tmp_path / "katib.db"
    store = Store(str(path))
    server = serve("127.0.0.1", 0, db_manager=DBManagerServicer(store, tmp_path))
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.bound_port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            assert health.Check(health_pb2.HealthCheckRequest()).status == health_pb2.HealthCheckResponse.SERVING
            unknown = rpc_error(health.Check, health_pb2.HealthCheckRequest(service="no.such.Service"))
            assert unknown.code() == grpc.StatusCode.UNKNOWN
            assert unknown.details() == "grpc.health.v1.Health can only be accepted if you specify service name."
            store.close()
            path.write_bytes(b"not a database, " * 512)  # the database is gone from under the server
            down = rpc_error(health.Check, health_pb2.HealthCheckRequest(service="grpc.health.v1.Health"))
            assert down.code() == grpc.StatusCode.UNKNOWN
            assert down.details().startswith("Failed to execute `SELECT 1` probe: ")
            watched = rpc_error(lambda r: next(iter(health.Watch(r))), health_pb2.HealthCheckRequest())
            assert watched.code() == grpc.StatusCode.UNIMPLEMENTED  # Katib's health.proto has no Watch
    finally:
        server.stop(grace=0)
        store.close()


def test_a_suggestion_service_alone_answers_an_unknown_name_not_found():
    """Katib's suggestion images (``base_health_service.py``) answer NOT_FOUND."""
    from suggestion import serve

    server = serve("127.0.0.1", 0)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.bound_port}") as channel:
            missing = rpc_error(health_pb2_grpc.HealthStub(channel).Check,
                                health_pb2.HealthCheckRequest(service="no.such.Service"))
        assert missing.code() == grpc.StatusCode.NOT_FOUND
    finally:
        server.stop(grace=0)


# -- DBManager and EarlyStopping against our own trials ---------------------------------

def wait_trials(server, name: str, states: set[str], count: int, timeout: float = 60) -> dict[str, str]:
    """The experiment's trials' states once ``count`` of them are in ``states``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rec = server.store.get_experiment("default", name)
        found = {t.name: t.state for t in server.store.list_trials(rec.id)}
        if len([s for s in found.values() if s in states]) >= count:
            return found
        time.sleep(0.05)
    raise AssertionError(f"{name}: not {count} trials in {states}: {found}")


def test_reports_reach_running_trials_and_set_trial_status_stops_one(grpc_server):
    """Two trials wait for a file. One gets its metric through ReportObservationLog (the
    StdOut collector's trial prints none: Katib's DB takes reports whatever the collector);
    the other is stopped by SetTrialStatus and ends EarlyStopped."""
    release = grpc_server.tmp / "release-grpc"
    code = ("import os, time\n"
            f"while not os.path.exists({str(release)!r}): time.sleep(0.02)\n")
    doc = experiment(name="grpc-live", maxTrialCount=2, parallelTrialCount=2, command=python_command(code))
    assert grpc_server.client.post("/api/v1/namespaces/default/experiments", json=doc).status_code == 201
    running = wait_trials(grpc_server, "grpc-live", {"Running"}, 2)
    first, second = sorted(running)
    stub = db(grpc_server)
    stub.ReportObservationLog(pb.ReportObservationLogRequest(
        trial_name=first, observation_log=logs(("loss", "0.25"), stamp="2026-01-02T03:04:05.5Z")))
    # what the trial's collector would drop is refused, as a REST push refuses it (it was OK, then lost);
    # Katib's collector's "unavailable" (the metric not found) is left out
    for name, value, said in (("loss", "nan", "value: loss must be a finite number or text"),
                              ("loss", "", "value: loss must be a finite number or text"),
                              ("timestamp", "0.1", "name: 'timestamp' is not a metric name")):
        bad = rpc_error(stub.ReportObservationLog, pb.ReportObservationLogRequest(
            trial_name=first, observation_log=logs((name, value))))
        assert bad.code() == grpc.StatusCode.INVALID_ARGUMENT and said in bad.details(), bad.details()
    skipped = logs(("loss", "0.3"), ("loss", "inf"))
    skipped.metric_logs[0].time_stamp = ""  # left out, as Katib does: the refusal still names the request's [1]
    bad = rpc_error(stub.ReportObservationLog, pb.ReportObservationLogRequest(trial_name=first, observation_log=skipped))
    assert "observation_log.metric_logs[1].metric.value" in bad.details(), bad.details()
    stub.ReportObservationLog(pb.ReportObservationLogRequest(trial_name=first, observation_log=logs(("loss", "unavailable"))))
    es = api_pb2_grpc.EarlyStoppingStub(grpc.insecure_channel(grpc_server.grpc))
    es.SetTrialStatus(pb.SetTrialStatusRequest(trial_name=second))
    wait_trials(grpc_server, "grpc-live", {"EarlyStopped"}, 1)
    release.write_text("")
    grpc_server.wait_for("default", "grpc-live")
    states = wait_trials(grpc_server, "grpc-live", {"Succeeded"}, 1)
    assert (states[first], states[second]) == ("Succeeded", "EarlyStopped")
    assert grpc_server.store.get_trial("default", first)[1].objective == 0.25
    got = stub.GetObservationLog(pb.GetObservationLogRequest(trial_name=first))
    assert [(m.time_stamp, m.metric.name, m.metric.value) for m in got.observation_log.metric_logs] == [
        ("2026-01-02T03:04:05.5Z", "loss", "0.25")]
    # A finished trial takes no more values; a stopped one cannot be stopped again.
    late = rpc_error(stub.ReportObservationLog, pb.ReportObservationLogRequest(
        trial_name=first, observation_log=logs(("loss", "0.1"))))
    assert late.code() == grpc.StatusCode.FAILED_PRECONDITION and "is Succeeded" in late.details()
    again = rpc_error(es.SetTrialStatus, pb.SetTrialStatusRequest(trial_name=second))
    assert again.code() == grpc.StatusCode.FAILED_PRECONDITION and "is EarlyStopped" in again.details()


# -- EarlyStopping: Katib's medianstop service tests -------------------------------------

def es_stub(server) -> api_pb2_grpc.EarlyStoppingStub:
    return api_pb2_grpc.EarlyStoppingStub(grpc.insecure_channel(server.grpc))


@pytest.mark.parametrize(("name", "settings", "details"), [
    pytest.param("medianstop", {"min_trials_required": "2", "start_step": "5"}, None, id=f"{ES_TEST}:valid"),
    pytest.param("unknown", {}, "unknown algorithm name unknown", id=f"{ES_TEST}:unknown-algorithm"),
    pytest.param("medianstop", {"unknown_conf": "100"}, "unknown setting unknown_conf for algorithm medianstop",
                 id=f"{ES_TEST}:unknown-setting"),
    pytest.param("medianstop", {"min_trials_required": "0"}, "min_trials_required must be greater than zero (>0)",
                 id=f"{ES_TEST}:min_trials_required-0"),
    pytest.param("medianstop", {"start_step": "0"}, "start_step must be greater or equal than one (>=1)",
                 id=f"{ES_TEST}:start_step-0"),
])
def test_validate_early_stopping_settings(grpc_server, name, settings, details):
    spec = pb.EarlyStoppingSpec(algorithm_name=name, algorithm_settings=[
        pb.EarlyStoppingSetting(name=k, value=v) for k, v in settings.items()])
    call = es_stub(grpc_server).ValidateEarlyStoppingSettings
    if details is None:
        call(pb.ValidateEarlyStoppingSettingsRequest(early_stopping=spec))
        return
    error = rpc_error(call, pb.ValidateEarlyStoppingSettingsRequest(early_stopping=spec))
    assert (error.code(), error.details()) == (grpc.StatusCode.INVALID_ARGUMENT, details)


def es_experiment(name: str, maximize: bool = False, **settings: str) -> pb.Experiment:
    spec = pb.ExperimentSpec(objective=pb.ObjectiveSpec(type=pb.MAXIMIZE if maximize else pb.MINIMIZE,
                                                        objective_metric_name="loss"))
    spec.early_stopping.algorithm_name = "medianstop"
    spec.early_stopping.algorithm_settings.extend(pb.EarlyStoppingSetting(name=k, value=v) for k, v in settings.items())
    return pb.Experiment(name=name, spec=spec)


def test_get_early_stopping_rules_without_results(grpc_server):
    """test_get_earlystopping_rules: two trials without status, Katib's default address."""
    reply = es_stub(grpc_server).GetEarlyStoppingRules(pb.GetEarlyStoppingRulesRequest(
        experiment=pb.Experiment(name="test"), trials=[pb.Trial(name="test-asfjh"), pb.Trial(name="test-234hs")],
        db_manager_address="katib-db-manager.kubeflow:6789"))
    assert list(reply.early_stopping_rules) == []


def test_rule_is_the_mean_of_first_start_step_averages_read_from_the_db_manager(grpc_server):
    """Katib's service: each succeeded trial's average over its first start_step reports
    (read back from the DB manager), then the mean; GREATER when minimising."""
    stub = db(grpc_server)
    curves = {"es-a": ["1.0", "3.0", "9.0"], "es-b": ["2.0", "2.0", "0.0"], "es-c": ["5.0"]}
    for trial, values in curves.items():
        for i, v in enumerate(values):
            stub.ReportObservationLog(pb.ReportObservationLogRequest(
                trial_name=trial, observation_log=logs(("loss", v), stamp=f"2026-01-01T00:00:0{i}Z")))
    trials = [pb.Trial(name=n, status=pb.TrialStatus(condition=pb.TrialStatus.SUCCEEDED)) for n in curves]
    trials.append(pb.Trial(name="es-d", status=pb.TrialStatus(condition=pb.TrialStatus.RUNNING)))
    es = es_stub(grpc_server)
    exp = es_experiment("es-rule", start_step="2", min_trials_required="3")
    few = es.GetEarlyStoppingRules(pb.GetEarlyStoppingRulesRequest(experiment=exp, trials=trials[:2],
                                                                   db_manager_address=grpc_server.grpc))
    assert list(few.early_stopping_rules) == []  # 2 succeeded < min_trials_required
    reply = es.GetEarlyStoppingRules(pb.GetEarlyStoppingRulesRequest(experiment=exp, trials=trials,
                                                                     db_manager_address=grpc_server.grpc))
    [rule] = reply.early_stopping_rules
    assert (rule.name, rule.value, rule.comparison, rule.start_step) == ("loss", str((2.0 + 2.0 + 5.0) / 3), pb.GREATER, 2)
    maximize = es.GetEarlyStoppingRules(pb.GetEarlyStoppingRulesRequest(
        experiment=es_experiment("es-max", maximize=True, min_trials_required="1"), trials=trials[:1],
        db_manager_address=grpc_server.grpc))
    assert [(r.value, r.comparison, r.start_step) for r in maximize.early_stopping_rules] == [("4.333333333333333", pb.LESS, 4)]
    bad = rpc_error(es.GetEarlyStoppingRules, pb.GetEarlyStoppingRulesRequest(
        experiment=es_experiment("es-bad"), trials=trials, db_manager_address="no-port"))
    assert bad.code() == grpc.StatusCode.INVALID_ARGUMENT and "Invalid Katib DB manager service address" in bad.details()


def test_a_caller_of_the_same_name_with_its_own_db_manager_changes_no_one_elses_rule():
    """The rule's settings and DB manager were taken from the first call for an experiment
    name, and its mean over every trial any call had named: a caller who asked first for
    ``victim`` with a DB manager of its own (loss 1000) and min_trials_required=1 made the
    victim's rule 1000. Now each (name, DB manager, objective, settings) keeps its own, and
    the mean is over the trials the request names."""
    from suggestion._es_service import EarlyStoppingServicer

    class Aborted(Exception):
        pass

    class Context:
        def abort(self, code, details):
            raise Aborted(code, details)

    def fetch(address, trial, metric, timeout=None):
        return ["1000"] if address == "evil:1" else ["0.5"]

    service = EarlyStoppingServicer(fetch=fetch)
    done = pb.TrialStatus(condition=pb.TrialStatus.SUCCEEDED)
    planted = service.GetEarlyStoppingRules(pb.GetEarlyStoppingRulesRequest(
        experiment=es_experiment("victim", min_trials_required="1"), trials=[pb.Trial(name="x-1", status=done)],
        db_manager_address="evil:1"), Context())
    assert [r.value for r in planted.early_stopping_rules] == ["1000.0"]
    trials = [pb.Trial(name=f"victim-{i}", status=done) for i in range(3)]
    reply = service.GetEarlyStoppingRules(pb.GetEarlyStoppingRulesRequest(
        experiment=es_experiment("victim", min_trials_required="3"), trials=trials, db_manager_address="db:6789"),
        Context())
    assert [r.value for r in reply.early_stopping_rules] == ["0.5"]
    # the same name, DB manager and settings, but naming other trials: the rule is over those
    other = service.GetEarlyStoppingRules(pb.GetEarlyStoppingRulesRequest(
        experiment=es_experiment("victim", min_trials_required="3"), trials=trials[:2], db_manager_address="db:6789"),
        Context())
    assert list(other.early_stopping_rules) == []
    with pytest.raises(Aborted, match="experiment.name: at most 253"):
        service.GetEarlyStoppingRules(pb.GetEarlyStoppingRulesRequest(
            experiment=es_experiment("v" * 254), trials=trials, db_manager_address="db:6789"), Context())


# -- Suggestion: exactly as many as asked ------------------------------------------------

def grid_request(count: int, done: int) -> pb.GetSuggestionsRequest:
    spec = pb.ExperimentSpec(objective=pb.ObjectiveSpec(type=pb.MINIMIZE, objective_metric_name="loss"),
                             algorithm=pb.AlgorithmSpec(algorithm_name="grid"), parallel_trial_count=3, max_trial_count=3)
    spec.parameter_specs.parameters.append(pb.ParameterSpec(
        name="x", parameter_type=pb.CATEGORICAL, feasible_space=pb.FeasibleSpace(list=["a", "b", "c"])))
    trials = []
    for i, v in enumerate(["a", "b", "c"][:done]):
        t = pb.Trial(name=f"grid-{i}", status=pb.TrialStatus(condition=pb.TrialStatus.SUCCEEDED))
        t.spec.parameter_assignments.assignments.append(pb.ParameterAssignment(name="x", value=v))
        trials.append(t)
    return pb.GetSuggestionsRequest(experiment=pb.Experiment(name="grid", spec=spec), trials=trials,
                                    current_request_number=count)


def test_a_short_answer_is_an_error_saying_how_many_there_are(grpc_server):
    stub = api_pb2_grpc.SuggestionStub(grpc.insecure_channel(grpc_server.grpc))
    error = rpc_error(stub.GetSuggestions, grid_request(3, done=1))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "asked for 3 suggestions, the algorithm grid has 2 to give now" in error.details()
    assert dict(error.trailing_metadata())["katib-available"] == "2"
    assert len(stub.GetSuggestions(grid_request(2, done=1)).parameter_assignments) == 2
    gone = rpc_error(stub.GetSuggestions, grid_request(1, done=3))
    assert "exhausted" in gone.details()


def test_remote_algorithm_takes_what_a_short_service_has(grpc_server):
    from katib.spec import apply_defaults, parse_experiment
    from suggestion import RemoteAlgorithm, TrialView

    doc = experiment(algorithm={"algorithmName": "grid"},
                     parameters=[{"name": "x", "parameterType": "categorical", "feasibleSpace": {"list": ["a", "b", "c"]}}],
                     maxTrialCount=3)
    exp = apply_defaults(parse_experiment(doc))
    got = RemoteAlgorithm(grpc_server.grpc, "grid").suggest(exp, [TrialView("t0", {"x": "a"}, "Succeeded", 1.0)], 3, {})
    assert sorted(a.parameters["x"] for a in got) == ["b", "c"]


def test_the_server_without_grpc_serves_none(tmp_path: Path, sqlite_store):
    with LiveServer(sqlite_store, tmp_path) as server:
        assert not hasattr(server.app.state, "grpc_port")


def test_katib_server_refuses_grpc_with_auth(tmp_path: Path):
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "katib", "server", "--auth", "--grpc-port", "0",
                        "--db", str(tmp_path / "k.db")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "--grpc-port cannot be used with --auth" in r.stderr


def test_a_custom_collector_reports_to_the_servers_grpc_port(grpc_server):
    """A Custom collector's katib-db-manager address is the server's own gRPC port (no
    DBManager of its own is started): its ReportObservationLog lands on the trial."""
    import sys

    from tests.conftest import REPO

    doc = experiment(name="grpc-custom", maxTrialCount=1, parallelTrialCount=1,
                     command=python_command("open('/katib/m.log', 'w').write('loss=0.375\\n')"))
    doc["spec"]["metricsCollectorSpec"] = {
        "source": {"fileSystemPath": {"path": "/katib/m.log", "kind": "File"}},
        "collector": {"kind": "Custom", "customCollector": {
            "name": "collector", "image": "example/collector:v1",
            "command": [sys.executable, str(REPO / "tests" / "custom_collector.py")],
            "args": ["-m", "loss", "-s", "katib-db-manager.kubeflow:6789", "-path", "/katib/m.log"]}}}
    assert grpc_server.client.post("/api/v1/namespaces/default/experiments", json=doc).status_code == 201
    grpc_server.wait_for("default", "grpc-custom")
    [trial] = grpc_server.store.list_trials(grpc_server.store.get_experiment("default", "grpc-custom").id)
    assert (trial.state, trial.objective) == ("Succeeded", 0.375), trial.conditions
    [log] = list(grpc_server.tmp.rglob(f"{trial.name}/metrics-collector.log"))
    assert f"to {grpc_server.grpc}" in log.read_text()


def _random_request(parameters: list, state: str | None = None, algorithm: str = "random") -> pb.GetSuggestionsRequest:
    spec = pb.ExperimentSpec(objective=pb.ObjectiveSpec(type=pb.MINIMIZE, objective_metric_name="loss"),
                             algorithm=pb.AlgorithmSpec(algorithm_name=algorithm), parallel_trial_count=1)
    if state is not None:
        from suggestion._service import STATE_SETTING

        spec.algorithm.algorithm_settings.append(pb.AlgorithmSetting(name=STATE_SETTING, value=state))
    spec.parameter_specs.parameters.extend(parameters)
    return pb.GetSuggestionsRequest(experiment=pb.Experiment(name="bad", spec=spec), current_request_number=1)


def test_bad_suggestion_requests_are_invalid_argument_naming_the_field(grpc_server):
    """Each was UNKNOWN with a Python exception's text (a KeyError, a list's missing
    attribute, a recursion limit, an int too large for a float) or, past the parameter
    limit, accepted."""
    stub = api_pb2_grpc.SuggestionStub(grpc.insecure_channel(grpc_server.grpc))
    double = pb.ParameterSpec(name="x", parameter_type=pb.DOUBLE, feasible_space=pb.FeasibleSpace(min="0", max="1"))
    odd = pb.ParameterSpec(name="x", parameter_type=pb.DOUBLE,
                           feasible_space=pb.FeasibleSpace(min="0", max="1", distribution=99))
    cases = [
        (_random_request([odd]), "feasible_space.distribution: unknown value 99"),
        (_random_request([double], "[]", "hyperband"), "must be a JSON object"),
        (_random_request([double], "0", "pbt"), "must be a JSON object"),
        (_random_request([double], "[" * 100_000, "hyperband"), "nested too deep"),
        (_random_request([pb.ParameterSpec(name=f"p{i}", parameter_type=pb.DOUBLE,
                                           feasible_space=pb.FeasibleSpace(min="0", max="1")) for i in range(1001)]),
         "parameters: must have at most 1000 parameters"),
    ]
    for request, said in cases:
        error = rpc_error(stub.GetSuggestions, request)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and said in error.details(), error.details()[:300]
    # 3^700 points: more than a float holds (an OverflowError), but a space like any other
    many = [pb.ParameterSpec(name=f"c{i}", parameter_type=pb.CATEGORICAL,
                             feasible_space=pb.FeasibleSpace(list=["a", "b", "c"])) for i in range(700)]
    reply = stub.GetSuggestions(_random_request(many))
    assert len(reply.parameter_assignments) == 1 and len(reply.parameter_assignments[0].assignments) == 700
