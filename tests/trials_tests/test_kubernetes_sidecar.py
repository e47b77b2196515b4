"""Katib's metrics-collector sidecar on the Kubernetes executor (trials/_sidecar.py), as
Katib's pod webhook injects it (pkg/webhook/v1beta1/pod/inject_webhook.go, utils.go): an
experiment of File-collector trials runs to its end on the kmock emulator, whose kubelet
runs the sidecar as a stand-in of Katib's collector image (tests/file_collector.py) that
reports over real gRPC to the DBManager; the manifests are validated; the refusals."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("kmock")
pytest.importorskip("grpc")

from katib.controller import Controller, admit  # noqa: E402
from tests.conftest import REPO, experiment  # noqa: E402
from tests.trials_tests.kube_cluster import FakeCluster, _expand  # noqa: E402
from trials import LaunchError, TrialJob  # noqa: E402
from trials._kubernetes import KubernetesExecutor, manifest_errors  # noqa: E402
from trials._sidecar import inject  # noqa: E402

IMAGE = "katib-test/file-metrics-collector"
PATH = "/var/log/katib/metrics.log"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = FakeCluster(tmp_path_factory.mktemp("work"), tmp_path_factory.mktemp("pod-logs"),
                    images={IMAGE: [sys.executable, str(REPO / "tests" / "file_collector.py")]})
    yield c
    c.close()


def file_experiment(name: str, **spec) -> dict:
    # The trial writes its metric to Katib's path (its own emptyDir) and a decoy to stdout.
    doc = experiment(name=name, command=["sh", "-c", "echo loss=999; echo loss=${trialParameters.x} > " + PATH],
                     metricsCollectorSpec={"collector": {"kind": "File"},
                                           "source": {"fileSystemPath": {"path": PATH, "kind": "File"}}}, **spec)
    return doc


def run_with_db_manager(store, tmp_path, cluster, doc, images=None):
    """``doc`` run to its end on the emulator, its sidecars reporting to a DBManager on a
    loopback port (the emulator's pods are this machine's processes)."""
    from katib._dbmanager import serve_grpc

    runs = tmp_path / "runs"
    grpc_server = serve_grpc(store, runs, None, "127.0.0.1", 0)
    address = f"127.0.0.1:{grpc_server.bound_port}"
    executor = KubernetesExecutor(api_client=cluster.api, watch_timeout=5, db_manager_address=address,
                                  collector_images=images or {"File": IMAGE})
    ctl = Controller(store, executor=executor, runs_root=runs, tick=0.1)
    rec, _ = ctl.submit(admit(doc), tmp_path)
    try:
        status = ctl.run(rec.namespace, rec.name).to_dict()
    finally:
        executor.close()
        grpc_server.stop(grace=0)
    return status, store.list_trials(rec.id), address


def test_file_collector_trials_run_with_katibs_sidecar(sqlite_store, tmp_path, cluster):
    doc = file_experiment("sidecar-file", maxTrialCount=3, parallelTrialCount=2)
    status, trials, address = run_with_db_manager(sqlite_store, tmp_path, cluster, doc)
    assert status["trialsSucceeded"] == 3, [(t.name, t.state, t.conditions) for t in trials]
    # Each trial's value is its own (each pod has its own emptyDir), reported by the sidecar
    # (the decoy on stdout is not read).
    for t in trials:
        assert float(t.observation["loss"]["latest"]) == pytest.approx(float(t.parameters()["x"]))
    jobs = [j for j in cluster.created if j["metadata"]["labels"]["katib.kubeflow.org/experiment"] == "sidecar-file"]
    assert len(jobs) == 3
    for job in jobs:
        assert manifest_errors(job) == []
        spec = job["spec"]["template"]["spec"]
        primary, sidecar = spec["containers"]
        assert spec["shareProcessNamespace"] is True
        assert spec["volumes"][-1] == {"name": "metrics-volume", "emptyDir": {}}
        mount = {"name": "metrics-volume", "mountPath": "/var/log/katib"}
        assert mount in primary["volumeMounts"] and sidecar["volumeMounts"] == [mount]
        assert primary["command"] == ["sh", "-c"]
        assert primary["args"][0].endswith(" > " + PATH + " && echo completed > /var/log/katib/$$$$.pid")
        assert (sidecar["name"], sidecar["image"]) == ("metrics-logger-and-collector", IMAGE)
        assert sidecar["args"] == ["-t", job["metadata"]["name"], "-m", "loss", "-o-type", "minimize", "-s-db",
                                   address, "-path", PATH, "-format", "TEXT"]


def test_a_failed_training_fails_its_pod_and_collector(sqlite_store, tmp_path, cluster):
    """Training that exits non-zero writes no completed marker: the collector reports
    nothing and fails, as Katib's does, and the trial fails with the training's exit code."""
    doc = file_experiment("sidecar-failed", maxTrialCount=1, parallelTrialCount=1, maxFailedTrialCount=1)
    container = doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]
    container["command"][-1] += "; exit 3"
    status, trials, _ = run_with_db_manager(sqlite_store, tmp_path, cluster, doc)
    message = " ".join(c.message or "" for c in trials[0].conditions if c.type == "Failed")
    assert [t.state for t in trials] == ["Failed"] and "container main" in message and "exit code 3" in message, message
    assert "container metrics-logger-and-collector" in message  # it reported nothing and failed too
    assert trials[0].observation["loss"]["latest"] == "unavailable"


def _job(tmp_path: Path, kind: str = "File", run_spec: dict | None = None) -> TrialJob:
    container = {"name": "training", "image": "python:3.12", "command": ["python", "train.py", "--lr=0.1"]}
    spec = run_spec or {"apiVersion": "batch/v1", "kind": "Job",
                        "spec": {"template": {"spec": {"containers": [container], "restartPolicy": "Never"}}}}
    return TrialJob(name="exp-abc", experiment="exp", namespace="default", run_spec=spec, primary_container="training",
                    workdir=tmp_path, trial_dir=tmp_path / "t", collector=kind, metric_names=["loss", "acc"],
                    objective_type="minimize",
                    collector_source={"fileSystemPath": {"path": "/katib/tfevent/", "kind": "Directory"},
                                      "filter": {"metricsFormat": ["(\\w+)=(\\d+)"]}})


def test_tensorflowevent_sidecar_and_katibs_wrap(tmp_path):
    """TensorFlowEvent: Katib's metrics-collector container, the event folder itself
    mounted, -f from metricsFormat, no -format; a command not under sh -c is joined."""
    job = _job(tmp_path, "TensorFlowEvent")
    assert inject(job.run_spec, kind="TensorFlowEvent", trial="exp-abc", primary_container="training",
                  primary_labels=None, metrics=["loss", "acc"], objective_type="minimize",
                  source=job.collector_source or {}, db_manager="10.0.0.5:6789") == 1
    spec = job.run_spec["spec"]["template"]["spec"]
    primary, sidecar = spec["containers"]
    assert primary["args"] == ["python train.py --lr=0.1 && echo completed > /katib/tfevent/$$$$.pid"]
    assert sidecar["name"] == "metrics-collector" and "tfevent-metrics-collector" in sidecar["image"]
    assert sidecar["args"] == ["-t", "exp-abc", "-m", "loss;acc", "-o-type", "minimize", "-s-db", "10.0.0.5:6789",
                               "-path", "/katib/tfevent/", "-f", "(\\w+)=(\\d+)"]
    assert sidecar["volumeMounts"][0]["mountPath"] == "/katib/tfevent"
    assert sidecar["resources"]["limits"]["memory"] == "1Gi" and sidecar["imagePullPolicy"] == "IfNotPresent"
    assert manifest_errors(job.run_spec) == []
    # Kubernetes gives the shell $$ (its pid) from Katib's $$$$.
    assert _expand(primary["args"][0], {}).endswith("/katib/tfevent/$$.pid")


def test_only_the_primary_replica_gets_the_sidecar(tmp_path):
    def replica() -> dict:
        return {"template": {"spec": {"containers": [{"name": "pytorch", "image": "x", "command": ["python", "t.py"]}]}}}

    run_spec = {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob",
                "spec": {"pytorchReplicaSpecs": {"Master": replica(), "Worker": {**replica(), "replicas": 2}}}}
    assert inject(run_spec, kind="File", trial="t", primary_container="pytorch",
                  primary_labels={"training.kubeflow.org/job-role": "master"}, metrics=["loss"], objective_type="minimize",
                  source={"fileSystemPath": {"path": "/m/l.txt", "format": "TEXT"}}, db_manager="a:1") == 1
    specs = run_spec["spec"]["pytorchReplicaSpecs"]
    assert len(specs["Master"]["template"]["spec"]["containers"]) == 2
    assert len(specs["Worker"]["template"]["spec"]["containers"]) == 1


def test_refusals_name_what_is_missing(tmp_path, cluster):
    job = _job(tmp_path)
    job.collector_source = {"fileSystemPath": {"path": PATH, "kind": "File", "format": "TEXT"}}
    with pytest.raises(LaunchError, match="--db-manager-address"):
        KubernetesExecutor(api_client=cluster.api).launch(job)
    # Under --auth, as the Custom collector: Katib's gRPC API carries no credentials.
    tenants = KubernetesExecutor(api_client=cluster.api, tenants=True, server_account="katib/server",
                                 db_manager_address="10.0.0.5:6789")
    with pytest.raises(LaunchError, match="carries no credentials"):
        tenants.launch(job)
    # A primary container without a command: Katib reads the image's entrypoint; we cannot.
    del job.run_spec["spec"]["template"]["spec"]["containers"][0]["command"]
    with pytest.raises(LaunchError, match=r"containers\[training\]\.command"):
        KubernetesExecutor(api_client=cluster.api, db_manager_address="10.0.0.5:6789").launch(job)


def test_katib_server_gives_pods_the_db_manager_address(tmp_path, cluster, monkeypatch):
    """`katib server --executor kubernetes --db-manager-address … --metrics-collector-image …`
    (in this process, its serving caught) makes executors with them; bad values and --auth
    are refused at once, naming the flag."""
    import yaml
    from typer.testing import CliRunner

    import katib.cli._server as server_cli
    from katib.cli import app

    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "emulator",
        "clusters": [{"name": "emulator", "cluster": {"server": cluster.url}}],
        "users": [{"name": "me", "user": {"token": "not-checked"}}],
        "contexts": [{"name": "emulator", "context": {"cluster": "emulator", "user": "me"}}]}))
    served: list = []
    monkeypatch.setattr(server_cli, "_serve", lambda application, *_, **__: served.append(application))
    args = ["server", "--db", str(tmp_path / "k.db"), "--executor", "kubernetes", "--kubeconfig", str(kubeconfig)]
    for extra, why in ((["--db-manager-address", "katib-db"], "--db-manager-address: 'katib-db' is not HOST:PORT"),
                       (["--metrics-collector-image", "StdOut=x"], "--metrics-collector-image: 'StdOut=x' is not"),
                       (["--auth", "--db-manager-address", "katib:6789"], "--db-manager-address cannot be used with --auth")):
        bad = CliRunner().invoke(app, [*args, *extra])
        assert bad.exit_code != 0 and why in str(bad.exception), (extra, bad.exception)
    result = CliRunner().invoke(app, [*args, "--db-manager-address", "katib.example:6789",
                                      "--metrics-collector-image", "File=registry.example/collector:1"])
    assert result.exit_code == 0 and len(served) == 1, result.output
    assert "--db-manager-address without --grpc-port" in result.output
    executor = served[0].state.katib.manager.executor_factory()
    try:
        assert executor.db_manager_address == "katib.example:6789"
        assert executor.collector_images == {"File": "registry.example/collector:1"}
    finally:
        executor.close()


# TensorBoard's own event writer (tensorboardX's takes 4 s to import).
WRITE_EVENT = """import sys, time
from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.summary.writer.event_file_writer import EventFileWriter
w = EventFileWriter(sys.argv[1])
value = summary_pb2.Summary.Value(tag="loss", simple_value=float(sys.argv[2]))
w.add_event(event_pb2.Event(wall_time=time.time(), step=0, summary=summary_pb2.Summary(value=[value])))
w.close()
"""


def test_tensorflowevent_trial_runs_with_katibs_sidecar(sqlite_store, tmp_path, cluster):
    """A TensorFlowEvent trial's event files, written in its pod's emptyDir, read by the
    collector sidecar (Katib's metrics-collector container) and reported over gRPC."""
    pytest.importorskip("tensorboard")
    (cluster.workdir / "write_event.py").write_text(WRITE_EVENT)
    folder = "/var/log/katib/tfevent/"
    doc = experiment(name="sidecar-tfevent", maxTrialCount=1, parallelTrialCount=1,
                     command=[sys.executable, "write_event.py", folder, "${trialParameters.x}"],
                     metricsCollectorSpec={"collector": {"kind": "TensorFlowEvent"},
                                           "source": {"fileSystemPath": {"path": folder, "kind": "Directory"}}})
    cluster.images["katib-test/tfevent-metrics-collector"] = cluster.images[IMAGE]
    status, trials, _ = run_with_db_manager(sqlite_store, tmp_path, cluster, doc,
                                            images={"TensorFlowEvent": "katib-test/tfevent-metrics-collector"})
    assert status["trialsSucceeded"] == 1, trials[0].conditions
    assert float(trials[0].observation["loss"]["latest"]) == pytest.approx(float(trials[0].parameters()["x"]), rel=1e-6)
    job = next(j for j in cluster.created if j["metadata"]["name"] == trials[0].name)
    assert job["spec"]["template"]["spec"]["containers"][1]["name"] == "metrics-collector"
    assert manifest_errors(job) == []


def test_katib_run_serves_the_db_manager_its_sidecars_report_to(tmp_path, cluster):
    """Issue 12: `katib run --executor kubernetes --grpc-port 0 --db-manager-address HOST`
    serves Katib's DBManager for the run (as katib server --grpc-port does) and gives the
    sidecars its address, HOST with the port bound: a File experiment runs to its end."""
    import yaml
    from typer.testing import CliRunner

    from katib.cli import app

    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "emulator",
        "clusters": [{"name": "emulator", "cluster": {"server": cluster.url}}],
        "users": [{"name": "me", "user": {"token": "not-checked"}}],
        "contexts": [{"name": "emulator", "context": {"cluster": "emulator", "user": "me"}}]}))
    spec = tmp_path / "exp.yaml"
    spec.write_text(yaml.safe_dump(file_experiment("run-file", maxTrialCount=2, parallelTrialCount=2)))
    args = ["run", str(spec), "--db", str(tmp_path / "k.db"), "--tick", "0.2",
            "--executor", "kubernetes", "--kubeconfig", str(kubeconfig), "--metrics-collector-image", f"File={IMAGE}"]
    result = CliRunner().invoke(app, [*args, "--grpc-port", "0", "--db-manager-address", "127.0.0.1"])
    assert result.exit_code == 0, (result.output, result.exception)
    assert "Succeeded (ExperimentMaxTrialsReached)" in result.output
    jobs = [j for j in cluster.created if j["metadata"]["labels"]["katib.kubeflow.org/experiment"] == "run-file"]
    assert len(jobs) == 2
    for job in jobs:
        sidecar = job["spec"]["template"]["spec"]["containers"][1]
        address = sidecar["args"][sidecar["args"].index("-s-db") + 1]
        assert address.startswith("127.0.0.1:") and int(address.split(":")[1]) > 0
    from katib.store import Store

    store = Store(str(tmp_path / "k.db"))
    for t in store.list_trials(store.get_experiment("default", "run-file").id):
        assert float(t.observation["loss"]["latest"]) == pytest.approx(float(t.parameters()["x"]))
    for extra, why in ((["--db-manager-address", "pods-reach-me"], "'pods-reach-me' needs a port (HOST:PORT), or --grpc-port"),
                       (["--db-manager-address", "a:99999"], "'a:99999' is not HOST:PORT"),
                       (["--kueue-queue", "q"], None)):
        bad = CliRunner().invoke(app, [*args, *extra] if why else [*args[:4], "--kueue-queue", "q"])
        message = bad.output + str(bad.exception)
        assert bad.exit_code != 0 and (why or "--kueue-queue is for --executor kubernetes") in message, (extra, message)


def test_custom_collector_runs_as_the_injected_sidecar(sqlite_store, tmp_path, cluster):
    """Issue 12: a Custom collector's container (Katib's example's, its image a stand-in:
    tests/custom_collector.py) is injected beside the primary container as Katib's webhook
    injects it, Katib's DB manager service in its args pointed at ours; the experiment runs
    to its end with the values it reported over gRPC (the decoy on stdout is not read)."""
    cluster.images["katib-test/custom-metrics-collector"] = [sys.executable, str(REPO / "tests" / "custom_collector.py")]
    collector = {"name": "custom-metrics-logger-and-collector", "image": "katib-test/custom-metrics-collector",
                 "args": ["-m", "loss", "-s", "katib-db-manager.kubeflow:6789", "-path", PATH],
                 "env": [{"name": "TrialNamePrefix", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]}
    doc = experiment(name="sidecar-custom", maxTrialCount=2, parallelTrialCount=2,
                     command=["sh", "-c", "echo loss=999; echo loss=${trialParameters.x} > " + PATH],
                     metricsCollectorSpec={"collector": {"kind": "Custom", "customCollector": collector},
                                           "source": {"fileSystemPath": {"path": PATH, "kind": "File"}}})
    status, trials, address = run_with_db_manager(sqlite_store, tmp_path, cluster, doc)
    assert status["trialsSucceeded"] == 2, [(t.name, t.state, t.conditions) for t in trials]
    for t in trials:
        assert float(t.observation["loss"]["latest"]) == pytest.approx(float(t.parameters()["x"]))
    jobs = [j for j in cluster.created if j["metadata"]["labels"]["katib.kubeflow.org/experiment"] == "sidecar-custom"]
    assert len(jobs) == 2
    for job in jobs:
        assert manifest_errors(job) == []
        spec = job["spec"]["template"]["spec"]
        primary, sidecar = spec["containers"]
        assert spec["shareProcessNamespace"] is True and spec["volumes"][-1] == {"name": "metrics-volume", "emptyDir": {}}
        mount = {"name": "metrics-volume", "mountPath": "/var/log/katib"}
        assert mount in primary["volumeMounts"] and sidecar["volumeMounts"] == [mount]
        assert primary["command"][:2] == ["sh", "-c"] and "completed" not in " ".join(primary["command"])  # not wrapped
        assert (sidecar["name"], sidecar["image"]) == (collector["name"], collector["image"])
        assert sidecar["args"] == ["-m", "loss", "-s", address, "-path", PATH]
        env = {e["name"]: e.get("value", e.get("valueFrom")) for e in sidecar["env"]}
        assert env["TrialNamePrefix"] == {"fieldRef": {"fieldPath": "metadata.name"}}
        assert (env["KATIB_TRIAL_NAME"], env["KATIB_DB_MANAGER_ADDRESS"]) == (job["metadata"]["name"], address)
        assert "resources" not in sidecar  # as written: Katib adds none to a Custom collector


def test_custom_collector_refusals(tmp_path, cluster):
    job = _job(tmp_path, "Custom")
    job.custom_collector = {"name": "c", "image": "x", "args": ["-s", "katib-db-manager:6789"]}
    with pytest.raises(LaunchError, match="--db-manager-address"):
        KubernetesExecutor(api_client=cluster.api).launch(job)
    tenants = KubernetesExecutor(api_client=cluster.api, tenants=True, server_account="katib/server",
                                 db_manager_address="10.0.0.5:6789")
    with pytest.raises(LaunchError, match="carries no credentials"):
        tenants.launch(job)
    job.custom_collector = {"name": "c"}
    with pytest.raises(LaunchError, match=r"customCollector: must be a container with an image"):
        KubernetesExecutor(api_client=cluster.api, db_manager_address="10.0.0.5:6789").launch(job)
    # No fileSystemPath: no volume; the primary container is left as written.
    job.custom_collector, job.collector_source = {"name": "c", "image": "x"}, None
    manifest = KubernetesExecutor(api_client=cluster.api, db_manager_address="10.0.0.5:6789").manifest(job)
    spec = manifest["spec"]["template"]["spec"]
    assert [c["name"] for c in spec["containers"]] == ["training", "c"] and "volumes" not in spec
    assert spec["containers"][0]["command"] == ["python", "train.py", "--lr=0.1"]


# A trial serving its metric on the port httpGet names until it was scraped twice.
SERVE_METRICS = """import sys, threading
from http.server import BaseHTTPRequestHandler, HTTPServer
scraped = threading.Semaphore(0)
class Metrics(BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("# TYPE loss gauge\\nloss %s\\n" % sys.argv[2]).encode()
        self.send_response(200 if self.path == "/metrics" else 404)
        self.end_headers()
        self.wfile.write(body)
        scraped.release()
    def log_message(self, *args):
        pass
server = HTTPServer(("127.0.0.1", int(sys.argv[1])), Metrics)
threading.Thread(target=server.serve_forever, daemon=True).start()
for _ in range(2):
    if not scraped.acquire(timeout=20):
        sys.exit("never scraped")
"""


def test_prometheus_metric_is_scraped_through_the_pod_proxy(sqlite_store, tmp_path, cluster):
    """Issue 12: PrometheusMetric on Kubernetes (katib-config ships no collector image for
    it): the controller scrapes the primary pod's endpoint (source.httpGet) through the API
    server's pod proxy, which the emulator forwards to the pod's port on loopback."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (cluster.workdir / "serve_metrics.py").write_text(SERVE_METRICS)
    doc = experiment(name="k8s-prometheus", maxTrialCount=2, parallelTrialCount=1,
                     command=[sys.executable, "serve_metrics.py", str(port), "${trialParameters.x}"],
                     metricsCollectorSpec={"collector": {"kind": "PrometheusMetric"},
                                           "source": {"httpGet": {"port": port, "path": "/metrics"}}})
    executor = KubernetesExecutor(api_client=cluster.api, watch_timeout=5)
    ctl = Controller(sqlite_store, executor=executor, runs_root=tmp_path / "runs", tick=0.1)
    rec, _ = ctl.submit(admit(doc), tmp_path)
    try:
        status = ctl.run(rec.namespace, rec.name).to_dict()
    finally:
        executor.close()
    trials = sqlite_store.list_trials(rec.id)
    assert status["trialsSucceeded"] == 2, [(t.name, t.state, t.conditions) for t in trials]
    for t in trials:
        assert float(t.observation["loss"]["latest"]) == pytest.approx(float(t.parameters()["x"]))
        assert any(p.startswith(f"/api/v1/namespaces/default/pods/{t.name}") and p.endswith(f":{port}/proxy/metrics")
                   for p in cluster.proxied), cluster.proxied
