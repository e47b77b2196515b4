"""The Ray executor against a real local Ray cluster that the tests start (2 CPUs and 2
declared GPUs, so GPU assignment can be checked on a machine without GPUs)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import ray  # noqa: E402

from katib.controller import Controller, admit  # noqa: E402
from tests.conftest import experiment, python_command  # noqa: E402
from trials._ray import RayExecutor  # noqa: E402

RAY = str(Path(sys.executable).with_name("ray"))


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A head node of this machine, for this test module alone."""
    port = _port()
    temp = tmp_path_factory.mktemp("ray")
    saved = {k: os.environ.get(k) for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")}
    # The driver may have imported Ray already, too late to read a token from the
    # environment: this throw-away cluster runs without token authentication.
    os.environ["RAY_AUTH_MODE"] = "disabled"
    subprocess.run([RAY, "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1", "--num-cpus=2",
                    "--num-gpus=2", "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp}"],
                   check=True, capture_output=True, timeout=120, env={**os.environ, "RAY_AUTH_MODE": "disabled"})
    try:
        yield f"127.0.0.1:{port}"
    finally:
        if ray.is_initialized():
            ray.shutdown()
        subprocess.run([RAY, "stop", "--force"], capture_output=True, timeout=120)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def run(store, tmp_path, doc, address, tick=0.1):
    ctl = Controller(store, executor=RayExecutor(address), runs_root=tmp_path / "runs", tick=tick)
    rec, _ = ctl.submit(admit(doc), tmp_path)
    status = ctl.run(rec.namespace, rec.name).to_dict()
    return status, store.list_trials(rec.id)


def test_an_experiment_runs_on_the_cluster(cluster, sqlite_store, tmp_path):
    code = ("import os, time, katib\nprint('node folder', os.path.dirname(os.environ['KATIB_PUSH_FILE']))\n"
            "for i in range(3):\n    print(f'loss={float(\"${trialParameters.x}\") + i}', flush=True)\n"
            "    time.sleep(0.1)\nkatib.report_metrics({'accuracy': 0.5})")
    doc = experiment(command=python_command(code), maxTrialCount=4, parallelTrialCount=2,
                     objective={"type": "minimize", "objectiveMetricName": "loss", "additionalMetricNames": ["accuracy"]})
    status, trials = run(sqlite_store, tmp_path, doc, cluster)
    assert status["trialsSucceeded"] == 4
    folders = []
    for t in trials:
        assert t.handle["executor"] == "ray" and t.handle["node"]
        assert t.objective == float(t.parameters()["x"])  # min over the streamed stdout values
        assert t.observation["accuracy"]["latest"] == "0.5"  # pushed on the node, mirrored here
        log = (tmp_path / "runs" / "default" / "demo" / t.name / "trial.log").read_text()
        assert log.count("loss=") == 3
        folders.append(Path(re.search(r"node folder (\S+)", log).group(1)))
    # Each trial's folder on the node is removed once everything in it has come back.
    assert all(f.name.startswith("katib-trial-") for f in folders) and len(set(folders)) == 4
    deadline = time.monotonic() + 10
    while any(f.exists() for f in folders):
        assert time.monotonic() < deadline, [f for f in folders if f.exists()]
        time.sleep(0.1)


def test_gpus_come_from_ray(cluster, sqlite_store, tmp_path):
    code = ("import os, time; print('gpus=[' + os.environ.get('CUDA_VISIBLE_DEVICES', '?') + ']', flush=True); "
            "time.sleep(0.5); print('loss=${trialParameters.x}')")
    doc = experiment(command=python_command(code), maxTrialCount=4, parallelTrialCount=4)
    doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]["resources"] = {
        "limits": {"nvidia.com/gpu": 1, "cpu": "0.5"}}
    status, trials = run(sqlite_store, tmp_path, doc, cluster)
    assert status["trialsSucceeded"] == 4
    for t in trials:
        log = (tmp_path / "runs" / "default" / "demo" / t.name / "trial.log").read_text()
        visible = re.search(r"gpus=\[(.*?)\]", log).group(1)
        assert visible in ("0", "1") and t.handle["devices"]["gpus"] == [visible]


def test_ray_places_trials_by_their_memory(cluster, sqlite_store, tmp_path):
    """A trial's memory request is Ray's to place by, as its CPUs are: two trials that each
    ask for 60% of the cluster's memory run one after the other; one that asks for more than
    the cluster has fails, saying so. Ray ignored the request, and ran both at once."""
    ray.init(address=cluster, ignore_reinit_error=True)
    memory = int(ray.cluster_resources()["memory"])
    code = "import time; print('start', time.time(), flush=True); time.sleep(1); print('end', time.time()); print('loss=${trialParameters.x}')"
    doc = experiment(command=python_command(code), maxTrialCount=2, parallelTrialCount=2)
    container = doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]
    container["resources"] = {"requests": {"cpu": "0.1", "memory": str(int(memory * 0.6))}}
    status, trials = run(sqlite_store, tmp_path, doc, cluster)
    assert status["trialsSucceeded"] == 2
    spans = []
    for t in trials:
        log = (tmp_path / "runs" / "default" / "demo" / t.name / "trial.log").read_text()
        spans.append((float(re.search(r"start (\S+)", log).group(1)), float(re.search(r"end (\S+)", log).group(1))))
    first, second = sorted(spans)
    assert second[0] >= first[1], spans

    container["resources"] = {"requests": {"cpu": "0.1", "memory": str(memory * 2)}}
    doc["metadata"]["name"] = "too-big"
    doc["spec"]["maxTrialCount"], doc["spec"]["parallelTrialCount"], doc["spec"]["maxFailedTrialCount"] = 1, 1, 0
    status, trials = run(sqlite_store, tmp_path, doc, cluster)
    assert trials[0].state == "Failed" and "GiB of memory; the Ray cluster has" in trials[0].conditions[-1].message


def test_stopping_kills_the_trial_on_its_node(cluster, sqlite_store, tmp_path):
    code = "import time; time.sleep(60); print('loss=${trialParameters.x}')"
    doc = experiment(command=python_command(code), maxTrialCount=1, parallelTrialCount=1,
                     objective={"type": "minimize", "objectiveMetricName": "loss", "goal": 0.5})
    doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["activeDeadlineSeconds"] = 1
    started = time.monotonic()
    status, trials = run(sqlite_store, tmp_path, doc, cluster)
    assert time.monotonic() - started < 30
    assert trials[0].state == "Failed" and "activeDeadlineSeconds" in trials[0].conditions[-1].message


def test_a_tuned_function_travels_to_ray_with_its_surroundings(cluster, sqlite_store, tmp_path):
    """KatibClient.tune's trials on Ray: the function, pickled with what it closes over,
    runs in the actor's process with typed parameters, and what it returns is the result."""
    import math

    from katib import search
    from katib._tune import experiment_doc

    offset = 0.25

    def objective(x, n):
        assert isinstance(x, float) and isinstance(n, int)
        return math.fabs(x - offset) + n

    doc, _ = experiment_doc("tuned", objective, {"x": search.double(0, 1), "n": search.int(1, 2)}, "loss", "StdOut",
                            None, objective_type="minimize", objective_goal=None, additional_metric_names=None,
                            algorithm_name="random", algorithm_settings=None, max_trial_count=2,
                            parallel_trial_count=2, max_failed_trial_count=None, resources_per_trial=None,
                            env_per_trial=None, base_image=None)
    status, trials = run(sqlite_store, tmp_path, doc, cluster)
    assert status["trialsSucceeded"] == 2
    for t in trials:
        params = {a["name"]: a["value"] for a in t.assignments}
        assert float(t.observation["loss"]["latest"]) == pytest.approx(abs(float(params["x"]) - 0.25) + int(params["n"]))


def test_a_trainjob_trial_runs_on_the_cluster(cluster, sqlite_store, tmp_path):
    """A one-node TrainJob of the Kubeflow SDK's CustomTrainer shape (issue 13): the script it
    writes stays in the trial's own folder, torchrun's environment comes along."""
    from tests.trials_tests.test_trainjob import SDK_SCRIPT, trainjob

    doc = experiment(maxTrialCount=2, parallelTrialCount=2, maxFailedTrialCount=1,
                     parameters=[{"name": "lr", "parameterType": "double", "feasibleSpace": {"min": "0.1", "max": "0.2"}}])
    doc["spec"]["trialTemplate"] = {"primaryContainerName": "node", "trialParameters": [{"name": "lr", "reference": "lr"}],
                                    "trialSpec": trainjob({"command": ["bash", "-c", SDK_SCRIPT]})}
    status, trials = run(sqlite_store, tmp_path, doc, cluster)
    assert status["trialsSucceeded"] == 2, [t.conditions for t in trials]
    for t in trials:
        assert t.handle["executor"] == "ray"
        assert t.objective == pytest.approx(float(t.parameters()["lr"]) * 2)
        assert "node 0 of 1 in node-0" in (tmp_path / "runs" / "default" / "demo" / t.name / "trial.log").read_text()


def test_a_trial_whose_actor_dies_fails_and_the_controller_carries_on(cluster, sqlite_store, tmp_path):
    """Ray's errors about a trial's actor (dead, or out of reach for good) end that trial as
    Failed with the reason; they used to escape poll() and end the whole controller."""
    # The actor's process is the trial's parent; checked first: if Ray's memory monitor has
    # killed the actor already, the trial's new parent may be the raylet, whose death ends
    # the test's own process (a Ray driver exits when its raylet dies).
    code = ("import os, signal, sys\nparent = os.getppid()\n"
            "if not open(f'/proc/{parent}/cmdline', 'rb').read().startswith(b'ray::'):\n"
            "    sys.exit('the actor is gone already')\n"
            "os.kill(parent, signal.SIGKILL)")
    doc = experiment(command=python_command(code), maxTrialCount=2, parallelTrialCount=1, maxFailedTrialCount=2)
    status, trials = run(sqlite_store, tmp_path, doc, cluster)
    assert status["trialsFailed"] == 2 and len(trials) == 2
    for t in trials:  # ended with its actor; on a loaded machine Ray's memory monitor may kill one at launch
        assert t.state == "Failed" and "actor" in t.conditions[-1].message.lower(), t.conditions[-1]


# Every metrics collector on Ray (issue 12): what the collector reads comes back from the
# trial's node into its folder here, as a multi-node cluster needs.

TFEVENT_WRITER = """
import os, sys, time
from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.summary.writer.event_file_writer import EventFileWriter
def add(w, step, v):
    value = summary_pb2.Summary.Value(tag="loss", simple_value=v)
    w.add_event(event_pb2.Event(wall_time=time.time(), step=step, summary=summary_pb2.Summary(value=[value])))
logdir = "/var/log/katib/tfevent/train"  # the actor's folder on its node, by now
w = EventFileWriter(logdir)
add(w, 0, 1.0)
w.flush()
# Wait for katib's copy in the trial's folder: the first value comes back while the trial runs.
mine = os.path.join(logdir, os.listdir(logdir)[0])
copy = os.path.join(os.environ["KATIB_TRIAL_DIR"], "var/log/katib/tfevent/train", os.path.basename(mine))
if mine == copy:
    sys.exit("the trial wrote into katib's folder, not into its node's")
deadline = time.time() + 30
while not (os.path.exists(copy) and os.path.getsize(copy) == os.path.getsize(mine)):
    if time.time() > deadline:
        sys.exit("the event file never came back")
    time.sleep(0.05)
add(w, 1, float("${trialParameters.x}"))
w.close()
"""


def test_tensorflowevent_files_come_back_from_the_node(cluster, sqlite_store, tmp_path):
    """The trial writes TensorBoard event files on its node; they come back into its folder
    while it runs (the first value before the second is written) and at its end, and
    TensorBoard's loader reads them here with Katib's tag matching."""
    pytest.importorskip("tensorboard")
    doc = experiment(name="tfevent", maxTrialCount=1, parallelTrialCount=1, command=[sys.executable, "-c", TFEVENT_WRITER],
                     objective={"type": "minimize", "objectiveMetricName": "train/loss"},
                     metricsCollectorSpec={"collector": {"kind": "TensorFlowEvent"}, "source": {
                         "fileSystemPath": {"path": "/var/log/katib/tfevent/", "kind": "Directory"}}})
    status, trials = run(sqlite_store, tmp_path, doc, cluster)
    assert status["trialsSucceeded"] == 1, [t.conditions for t in trials]
    for t in trials:
        x = str(float(__import__("numpy").float32(t.parameters()["x"])))
        assert [o.value for o in sqlite_store.observations(t.id)] == ["1.0", x]
        assert t.observation["train/loss"]["latest"] == x
        assert list((tmp_path / "runs" / "default" / "tfevent" / t.name / "var/log/katib/tfevent/train").iterdir())


def test_a_file_collectors_file_comes_back_from_the_node(cluster, sqlite_store, tmp_path):
    """The File collector's file (Katib's path, a file of the actor's folder on the node) comes
    back into the trial's folder and is read there, in Katib's JSON format."""
    code = ("import json\nwith open('/var/log/katib/metrics.json', 'w') as f:\n"
            "    for v in ('9', '${trialParameters.x}'):\n        f.write(json.dumps({'loss': v}) + '\\n')")
    doc = experiment(name="file", maxTrialCount=1, parallelTrialCount=1, command=[sys.executable, "-c", code],
                     metricsCollectorSpec={"collector": {"kind": "File"}, "source": {"fileSystemPath": {
                         "path": "/var/log/katib/metrics.json", "kind": "File", "format": "JSON"}}})
    status, [t] = run(sqlite_store, tmp_path, doc, cluster)
    assert status["trialsSucceeded"] == 1, t.conditions
    assert t.objective == float(t.parameters()["x"]) and t.observation["loss"]["min"] == t.parameters()["x"]
    copy = tmp_path / "runs" / "default" / "file" / t.name / "var/log/katib/metrics.json"
    assert copy.read_text().count("loss") == 2


def test_prometheus_is_scraped_on_the_trials_node(cluster, sqlite_store, tmp_path):
    """The endpoint is scraped where the trial runs (its localhost); the scrapes come back."""
    from tests.trials_tests.test_prometheus import SERVER
    from trials._prometheus import SCRAPES

    port = _port()
    doc = experiment(name="prometheus", maxTrialCount=1, parallelTrialCount=1,
                     objective={"type": "maximize", "objectiveMetricName": "accuracy"},
                     metricsCollectorSpec={"collector": {"kind": "PrometheusMetric"},
                                           "source": {"httpGet": {"port": port, "path": "/metrics"}}},
                     command=[sys.executable, "-c", SERVER, str(port), "${trialParameters.x}"])
    status, [t] = run(sqlite_store, tmp_path, doc, cluster)
    assert status["trialsSucceeded"] == 1, t.conditions
    assert float(t.observation["accuracy"]["latest"]) == 1 - float(t.parameters()["x"])
    assert "accuracy" in (tmp_path / "runs" / "default" / "prometheus" / t.name / SCRAPES).read_text()


def custom_collector(command: list[str]) -> dict:
    """Katib's example's Custom collector (its args, its DB manager, its fieldRef) with ``command``."""
    return {"source": {"fileSystemPath": {"path": "/katib/mnist.log", "kind": "File"}},
            "collector": {"kind": "Custom", "customCollector": {
                "name": "custom-metrics-logger-and-collector", "image": "example/collector", "command": command,
                "args": ["-m", "accuracy", "-s", "katib-db-manager.kubeflow:6789", "-path", "/katib/mnist.log"],
                "env": [{"name": "TrialNamePrefix", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]}}}


def test_a_custom_collector_runs_beside_the_trial_in_its_actor(cluster, sqlite_store, tmp_path):
    """The collector's command runs in the trial's actor, reads the file the trial writes on
    that node and reports through the DBManager gRPC API to the controller."""
    from tests.custom_collector import __file__ as collector

    code = "open('/katib/mnist.log', 'w').write('accuracy=' + str(1 - float('${trialParameters.x}')) + '\\n')"
    doc = experiment(name="custom", maxTrialCount=2, parallelTrialCount=2, command=[sys.executable, "-c", code],
                     objective={"type": "maximize", "objectiveMetricName": "accuracy"},
                     metricsCollectorSpec=custom_collector([sys.executable, collector]))
    status, trials = run(sqlite_store, tmp_path, doc, cluster)
    assert status["trialsSucceeded"] == 2, [t.conditions for t in trials]
    for t in trials:
        assert float(t.observation["accuracy"]["latest"]) == 1 - float(t.parameters()["x"])
        folder = tmp_path / "runs" / "default" / "custom" / t.name
        assert "reported {'accuracy'" in (folder / "metrics-collector.log").read_text()
        assert "accuracy" in (folder / "push.jsonl").read_text()  # the DBManager's, not the node's


def test_a_failing_custom_collector_fails_the_trial_and_a_loopback_one_is_refused_off_node(cluster, sqlite_store,
                                                                                           tmp_path, monkeypatch):
    """A collector that fails ends the training beside it and fails the trial; one whose
    DBManager is this machine's loopback is refused on another node, saying what to give."""
    def failing(name):
        return experiment(name=name, maxTrialCount=1, parallelTrialCount=1, maxFailedTrialCount=1,
                          command=python_command("import time; time.sleep(60)"),
                          metricsCollectorSpec=custom_collector([sys.executable, "-c", "import sys; sys.exit(3)"]))

    ex = RayExecutor(cluster)
    ctl = Controller(sqlite_store, executor=ex, runs_root=tmp_path / "runs", tick=0.1)
    started = time.monotonic()
    rec, _ = ctl.submit(admit(failing("failing")), tmp_path)
    ctl.run(rec.namespace, rec.name)
    [t] = sqlite_store.list_trials(rec.id)
    assert time.monotonic() - started < 20 and t.state == "Failed", t.conditions
    assert "exited with code 3" in t.conditions[-1].message, t.conditions

    own = ex._loopback
    monkeypatch.setattr(ex, "_loopback", lambda procs, job: (own(procs, job)[0], "another node"))  # as if off-node
    rec, _ = ctl.submit(admit(failing("off-node")), tmp_path)
    ctl.run(rec.namespace, rec.name)
    [t] = sqlite_store.list_trials(rec.id)
    message = t.conditions[-1].message
    assert t.state == "Failed" and "cannot reach" in message and "--db-manager-address" in message, message
    # --db-manager-address reaches the executor: an address the workers reach is given as it is.
    from trials import ExecutorOptions
    from trials._factories import ray as ray_factory

    given = ray_factory(ExecutorOptions(ray_address=cluster, db_manager_address="10.1.2.3:6789"))()
    assert given.db_manager_address == "10.1.2.3:6789" and given._loopback([{}, {}], None) == (None, None)

    # Under katib server --auth (tenants) it is not run at all: Katib's gRPC API carries no credentials.
    tenants = ray_factory(ExecutorOptions(ray_address=cluster, tenants=True))()
    ctl = Controller(sqlite_store, executor=tenants, runs_root=tmp_path / "runs", tick=0.1)
    rec, _ = ctl.submit(admit(failing("tenants")), tmp_path)
    ctl.run(rec.namespace, rec.name)
    [t] = sqlite_store.list_trials(rec.id)
    assert t.state == "Failed" and "carries no credentials" in t.conditions[-1].message, t.conditions


def test_pushed_lines_come_back_whole(tmp_path):
    """The node's pushed metrics are appended here a whole line at a time, as the DBManager
    appends a Custom collector's reports to the same file; a path that climbs out is dropped."""
    from types import SimpleNamespace

    push = tmp_path / "push.jsonl"
    trial = SimpleNamespace(files={"push": push, "file0": tmp_path / "events"}, partial={})
    RayExecutor._append(trial, "push", b'{"loss": "1"}\n{"loss"')
    push.open("a").write('{"accuracy": "0.5"}\n')  # the DBManager's
    RayExecutor._append(trial, "push", b': "2"}\n{"loss": "3"}')
    RayExecutor._append(trial, "push", b"", final=True)
    assert push.read_text().splitlines() == ['{"loss": "1"}', '{"accuracy": "0.5"}', '{"loss": "2"}', '{"loss": "3"}']
    RayExecutor._append(trial, "file0/train/events.out", b"x")
    RayExecutor._append(trial, "file0/../outside", b"x")
    assert (tmp_path / "events" / "train" / "events.out").read_bytes() == b"x"
    assert not (tmp_path / "outside").exists()


def test_every_builtin_collector_kind_is_admitted_on_ray():
    """What `katib run --executor ray` says of each kind: nothing, it runs."""
    from katib.controller import runnable_errors
    from trials._sources import BUILTIN_SOURCES

    for kind in BUILTIN_SOURCES:
        spec = custom_collector(["collector"]) if kind == "Custom" else {"collector": {"kind": kind}}
        assert runnable_errors(admit(experiment(metricsCollectorSpec=spec)), "ray") == [], kind


def test_an_actor_that_stops_answering_fails_its_trial_not_the_controller(cluster, sqlite_store, tmp_path, monkeypatch):
    # A hung worker (here: stopped with SIGSTOP) answered no read: the controller blocked on it
    # for 120 s, enforcing no deadline and storing nothing, then died with GetTimeoutError.
    import trials._ray as ray_executor

    monkeypatch.setattr(ray_executor, "UNREACHABLE_SECONDS", 3.0)
    code = ("import os, signal, sys, time\nparent = os.getppid()\n"
            "if not open(f'/proc/{parent}/cmdline', 'rb').read().startswith(b'ray::'):\n"
            "    sys.exit('the actor is gone already')\n"
            "print('loss=0.5', flush=True)\ntime.sleep(1)\nos.kill(parent, signal.SIGSTOP)\ntime.sleep(30)")
    doc = experiment(command=python_command(code), maxTrialCount=1, parallelTrialCount=1, maxFailedTrialCount=1)
    started = time.monotonic()
    status, (t,) = run(sqlite_store, tmp_path, doc, cluster)
    assert time.monotonic() - started < 25
    assert t.state == "Failed" and "did not answer" in t.conditions[-1].message, t.conditions[-1]


def test_a_trial_that_asks_for_no_gpu_sees_none(cluster, sqlite_store, tmp_path):
    # Ray leaves CUDA_VISIBLE_DEVICES unset for an actor given no GPU: its trial saw every
    # GPU of its node, where the local executor shows it none.
    code = "import os; print('gpus=[' + os.environ.get('CUDA_VISIBLE_DEVICES', 'unset') + ']'); print('loss=1')"
    status, (t,) = run(sqlite_store, tmp_path, experiment(command=python_command(code), maxTrialCount=1,
                                                          parallelTrialCount=1), cluster)
    log = (tmp_path / "runs" / "default" / "demo" / t.name / "trial.log").read_text()
    assert t.state == "Succeeded" and "gpus=[]" in log, log


def test_a_ray_address_where_nothing_answers_is_refused_at_once(tmp_path):
    """Ray's own connection to a dead address waits minutes, printing warnings; `katib run`
    says so before it stores anything."""
    from katib.errors import KatibError
    from trials._factories import ray as ray_factory
    from trials._registry import ExecutorOptions

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.monotonic()
    for address in (f"127.0.0.1:{port}", f"ray://127.0.0.1:{port}"):
        with pytest.raises(KatibError, match=f"nothing answers at 127.0.0.1:{port}"):
            ray_factory(ExecutorOptions(ray_address=address))
    assert time.monotonic() - started < 10
