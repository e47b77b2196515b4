"""The Kubernetes executor against a stateful Kubernetes API emulator (kmock) that a fake
job controller, kubelet and GPU device plugin play as a cluster (kube_cluster.py): the
same example experiment as on the other executors, GPU limits and assignments, pods that
fail, run out of memory, get evicted or hang, early stops, retained jobs, a PyTorchJob,
and every manifest validated against the official Kubernetes schemas."""

from __future__ import annotations

import copy
import time

import pytest
import yaml

pytest.importorskip("kmock")

from katib.controller import Controller, admit  # noqa: E402
from tests.conftest import REPO, experiment, python_command  # noqa: E402
from tests.trials_tests.kube_cluster import FakeCluster  # noqa: E402
from trials._kubernetes import KubernetesExecutor, manifest_errors  # noqa: E402

EXPERIMENT_LABEL, TRIAL_LABEL = "katib.kubeflow.org/experiment", "katib.kubeflow.org/trial"


@pytest.fixture(scope="module")
def _cluster(tmp_path_factory):
    c = FakeCluster(REPO / "examples", tmp_path_factory.mktemp("pod-logs"), gpus=2)
    yield c
    c.close()


@pytest.fixture
def cluster(_cluster):
    """The module's cluster, emptied of the last test's jobs and records."""
    for job in _cluster.objects("jobs"):
        _cluster.custom.delete_namespaced_custom_object("batch", "v1", job["metadata"]["namespace"], "jobs",
                                                        job["metadata"]["name"])
    _cluster.created.clear()
    _cluster.gpu_log.clear()
    return _cluster


def run(store, tmp_path, doc, cluster, tick=0.1, push_url=None):
    executor = KubernetesExecutor(api_client=cluster.api, watch_timeout=5, push_url=push_url)
    ctl = Controller(store, executor=executor, runs_root=tmp_path / "runs", tick=tick)
    rec, _ = ctl.submit(admit(doc), tmp_path)
    try:
        status = ctl.run(rec.namespace, rec.name).to_dict()
    finally:
        executor.close()
    return status, store.list_trials(rec.id)


def container_of(job: dict) -> dict:
    return job["spec"]["template"]["spec"]["containers"][0]


def test_the_example_experiment_runs_as_jobs_with_their_gpus(sqlite_store, tmp_path, cluster):
    doc = yaml.safe_load((REPO / "examples" / "random.yaml").read_text())
    doc["spec"].update(maxTrialCount=4, parallelTrialCount=3)
    container = doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]
    container["command"] = [c.replace("--epochs=8", "--epochs=3") for c in container["command"]]
    container["resources"] = {"limits": {"nvidia.com/gpu": 1, "cpu": "1", "memory": "1Gi"}}
    status, trials = run(sqlite_store, tmp_path, doc, cluster)
    assert status["trialsSucceeded"] == 4 and {t.state for t in trials} == {"Succeeded"}
    # The metrics came from the primary pod's log stream: each trial's latest is the last
    # value its log printed (a random configuration may train to chance level in 3 epochs).
    for t in trials:
        log = (tmp_path / "runs" / "kubeflow" / "random" / t.name / "trial.log").read_text()
        printed = [line.split("Validation-accuracy=")[1].split()[0] for line in log.splitlines()
                   if "Validation-accuracy=" in line]
        assert printed and float(t.observation["Validation-accuracy"]["latest"]) == float(printed[-1]), (t.name, log)
    # Each job is the rendered template, named and labelled as Katib's, GPU limits intact.
    assert sorted(j["metadata"]["name"] for j in cluster.created) == sorted(t.name for t in trials)
    for job in cluster.created:
        assert job["metadata"]["labels"][EXPERIMENT_LABEL] == "random"
        assert job["spec"]["template"]["metadata"]["labels"][TRIAL_LABEL] == job["metadata"]["name"]
        assert container_of(job)["resources"]["limits"]["nvidia.com/gpu"] == 1
        assert any(a.startswith("--lr=") and a != "--lr=${trialParameters.learningRate}" for a in container_of(job)["command"])
        assert manifest_errors(job) == []
    # Two GPUs, three trials at a time: each pod had one GPU of its own, never shared.
    assert len(cluster.gpu_log) == 4 and all(len(devices) == 1 for _, devices, _, _ in cluster.gpu_log)
    for a in cluster.gpu_log:
        for b in cluster.gpu_log:
            if a is not b and a[1] == b[1]:
                assert a[3] <= b[2] or b[3] <= a[2], (a, b)
    # Finished trials' jobs are deleted, and their pods with them.
    deadline = time.time() + 5
    while (cluster.objects("jobs") or cluster.objects("pods")) and time.time() < deadline:
        time.sleep(0.1)
    assert cluster.objects("jobs") == [] and cluster.objects("pods") == []


def _one(command, env=None, **spec):
    doc = experiment(command=command, maxTrialCount=1, parallelTrialCount=1, maxFailedTrialCount=1, **spec)
    c = doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]
    c["image"] = "python:3.11"
    if env:
        c["env"] = [{"name": k, "value": v} for k, v in env.items()]
    return doc


@pytest.mark.parametrize(("behaviour", "expected"), [
    ("oom", "container main in pod {trial}-"),
    ("evict", "Evicted: The node was low on resource: memory."),
])
def test_pods_that_die_fail_the_trial_with_the_reason(sqlite_store, tmp_path, cluster, behaviour, expected):
    status, trials = run(sqlite_store, tmp_path, _one(python_command("print('x=1')"), {"FAKE_KUBELET": behaviour}), cluster)
    (t,) = trials
    assert t.state == "Failed"
    failed = next(c for c in t.conditions if c.type == "Failed")
    message = failed.message
    assert "Job failed: BackoffLimitExceeded" in message
    assert expected.format(trial=t.name) in message
    # Katib's wording (UpdateTrialStatusCondition): the job's failed condition's reason, ours after it
    assert failed.reason == "TrialFailed. Job reason: BackoffLimitExceeded"
    assert message.startswith("Trial has failed. Job message: ")
    if behaviour == "oom":
        assert "OOMKilled (exit code 137)" in message


def test_a_failing_command_is_failed_with_its_exit_code(sqlite_store, tmp_path, cluster):
    _, (t,) = run(sqlite_store, tmp_path, _one(python_command("import sys; print('boom'); sys.exit(3)")), cluster)
    message = next(c.message for c in t.conditions if c.type == "Failed")
    assert t.state == "Failed" and "ended Error (exit code 3)" in message


def test_a_hung_trial_is_stopped_at_its_deadline_and_its_job_deleted(sqlite_store, tmp_path, cluster):
    doc = _one(python_command("print('x=1')"), {"FAKE_KUBELET": "hang"})
    doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["activeDeadlineSeconds"] = 1
    started = time.time()
    _, (t,) = run(sqlite_store, tmp_path, doc, cluster)
    assert t.state == "Failed" and time.time() - started < 30
    assert "activeDeadlineSeconds (1s)" in next(c.message for c in t.conditions if c.type == "Failed")
    deadline = time.time() + 5
    while (cluster.objects("pods") or cluster.procs) and time.time() < deadline:
        time.sleep(0.1)
    assert cluster.objects("jobs") == [] and cluster.objects("pods") == [] and not cluster.procs


def _early_stopped_doc() -> dict:
    """Six trials on a grid, three at a time; those above x = 0.5 are stopped by medianstop."""
    code = ("import time, sys\nbad = float(sys.argv[1]) > 0.5\nfor i in range(40):\n"
            "    print(f'loss={(0.9 if bad else 0.1) + 0.001 * i}', flush=True)\n    time.sleep(0.1)\n")
    doc = experiment(command=[*python_command(code)[:3], "${trialParameters.x}"], maxTrialCount=6, parallelTrialCount=3,
                     objective={"type": "minimize", "objectiveMetricName": "loss"},
                     algorithm={"algorithmName": "grid"},
                     parameters=[{"name": "x", "parameterType": "double",
                                  "feasibleSpace": {"min": "0.1", "max": "0.9", "step": "0.16"}}],
                     earlyStopping={"algorithmName": "medianstop", "algorithmSettings": [
                         {"name": "min_trials_required", "value": "2"}, {"name": "start_step", "value": "3"}]})
    return doc


def test_early_stopped_trials_leave_no_job_pod_or_process(sqlite_store, tmp_path, cluster):
    doc = _early_stopped_doc()
    _, trials = run(sqlite_store, tmp_path, doc, cluster)
    assert "EarlyStopped" in {t.state for t in trials}
    deadline = time.time() + 5
    while (cluster.objects("jobs") or cluster.objects("pods") or cluster.procs) and time.time() < deadline:
        time.sleep(0.1)
    assert cluster.objects("jobs") == [] and cluster.objects("pods") == [] and not cluster.procs


def test_retain_keeps_an_early_stopped_trials_job_with_its_pods_ended(sqlite_store, tmp_path, cluster):
    # Katib keeps a retained trial's job once the trial is completed, early-stopped too; the
    # stop deleted it whatever retain said. Now it is suspended: its pods end, the job stays.
    doc = _early_stopped_doc()
    doc["spec"]["trialTemplate"]["retain"] = True
    _, trials = run(sqlite_store, tmp_path, doc, cluster)
    stopped = {t.name for t in trials if t.state == "EarlyStopped"}
    assert stopped

    def stopped_pods():
        return [p for p in cluster.objects("pods") if p["metadata"]["labels"].get("job-name") in stopped]

    deadline = time.time() + 5
    while (stopped_pods() or cluster.procs) and time.time() < deadline:
        time.sleep(0.1)
    assert stopped_pods() == [] and not cluster.procs  # a finished trial's pod stays with its job, as in a cluster
    jobs = {j["metadata"]["name"]: j for j in cluster.objects("jobs")}
    assert set(jobs) == {t.name for t in trials}
    assert all(jobs[name]["spec"].get("suspend") is True for name in stopped)


def test_retain_keeps_the_job(sqlite_store, tmp_path, cluster):
    doc = _one(python_command("print('loss=0.5')"))
    doc["spec"]["trialTemplate"]["retain"] = True
    _, (t,) = run(sqlite_store, tmp_path, doc, cluster)
    assert t.state == "Succeeded"
    assert [j["metadata"]["name"] for j in cluster.objects("jobs")] == [t.name]


def pytorchjob(command: list[str]) -> dict:
    replica = {"replicas": 1, "restartPolicy": "OnFailure", "template": {"spec": {"containers": [
        {"name": "pytorch", "image": "python:3.11", "command": command,
         "resources": {"limits": {"nvidia.com/gpu": 1}}}]}}}
    doc = experiment(maxTrialCount=2, parallelTrialCount=2)
    doc["spec"]["trialTemplate"] = {
        "primaryContainerName": "pytorch",
        "trialParameters": [{"name": "x", "reference": "x"}],
        "trialSpec": {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob",
                      "spec": {"pytorchReplicaSpecs": {"Master": replica, "Worker": copy.deepcopy(replica)}}},
    }
    return doc


def test_a_pytorchjob_reads_the_masters_log(sqlite_store, tmp_path, cluster):
    status, trials = run(sqlite_store, tmp_path, pytorchjob(python_command("print('loss=0.25')")), cluster)
    assert status["trialsSucceeded"] == 2
    assert all(t.observation["loss"]["latest"] == "0.25" for t in trials)
    kinds = {j["kind"] for j in cluster.created}
    assert kinds == {"PyTorchJob"}
    for job in cluster.created:
        for replica in job["spec"]["pytorchReplicaSpecs"].values():
            assert replica["template"]["metadata"]["labels"][TRIAL_LABEL] == job["metadata"]["name"]
        assert manifest_errors(job) == []


def test_a_trainjob_runs_as_the_cr_with_katibs_defaults(sqlite_store, tmp_path, cluster):
    """Issue 13: a TrainJob trial is created as the CR; its node pods carry the trial's
    labels through katib's runtimePatches entry, node 0 (Katib 0.19's primary pod labels)
    gives the log, and Complete ends it."""
    doc = experiment(maxTrialCount=2, parallelTrialCount=2)
    doc["spec"]["trialTemplate"] = {
        "primaryContainerName": "node", "trialParameters": [{"name": "x", "reference": "x"}],
        "trialSpec": {"apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJob", "spec": {
            "runtimeRef": {"name": "torch-distributed"},
            "trainer": {"numNodes": 2, "command": python_command(
                "import os; print('loss=${trialParameters.x}', os.environ['KATIB_TRIAL_NAME'])")}}},
    }
    status, trials = run(sqlite_store, tmp_path, doc, cluster)
    assert status["trialsSucceeded"] == 2, [t.conditions for t in trials]
    for t in trials:
        assert t.objective == float(t.parameters()["x"])
        log = (tmp_path / "runs" / "default" / "demo" / t.name / "trial.log").read_text()
        assert t.name in log  # node 0's output, with katib's variables in spec.trainer.env
    jobs = [j for j in cluster.created if j["kind"] == "TrainJob"]
    assert sorted(j["metadata"]["name"] for j in jobs) == sorted(t.name for t in trials)
    for job in jobs:
        [patch] = job["spec"]["runtimePatches"]
        labels = patch["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]["metadata"]["labels"]
        assert labels[TRIAL_LABEL] == job["metadata"]["name"] and patch["manager"] == "katib.kubeflow.org/manager"
        assert manifest_errors(job) == []
    for t in trials:  # both nodes of each ran
        assert {f"{t.name}-node-0-0", f"{t.name}-node-0-1"} <= cluster.done


def test_under_auth_a_trainjob_may_not_patch_its_runtimes_pods():
    from trials._trainjob import label_trainjob, trainjob_escapes

    job = {"apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJob", "spec": {
        "runtimeRef": {"name": "torch-distributed"},
        "runtimePatches": [{"manager": "me", "trainingRuntimeSpec": {}}]}}
    label_trainjob(job, {TRIAL_LABEL: "t"}, {"KATIB_TRIAL_NAME": "t"})
    assert trainjob_escapes(job) == ["spec.runtimePatches[0]: a tenant's TrainJob may not patch its runtime's pods"]
    job["spec"]["runtimePatches"] = job["spec"]["runtimePatches"][1:]
    assert trainjob_escapes(job) == []  # katib's own entry is allowed


def test_under_auth_a_trainjob_sets_only_its_trainer_and_runtime_and_its_pods_get_no_token():
    """Trainer v2.0 names the override podSpecOverrides (later ones podTemplateOverrides):
    a tenant's TrainJob with one mounted the node's / and ran as the server's account, as only
    the later name was refused. And a TrainJob's pods, made by its runtime, had no template for
    the fence to take their service account token away."""
    from trials._trainjob import label_trainjob, trainjob_escapes

    overrides = [{"targetJobs": [{"name": "node"}], "serviceAccountName": "katib-server",
                  "volumes": [{"name": "host", "hostPath": {"path": "/"}}]}]
    for key, value in (("podSpecOverrides", overrides), ("podTemplateOverrides", overrides), ("managedBy", "x/y")):
        job = {"apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJob",
               "spec": {"runtimeRef": {"name": "torch-distributed"}, "trainer": {"numNodes": 2}, key: value}}
        assert [e.split(":")[0] for e in trainjob_escapes(job)] == [f"spec.{key}"], key
    job = {"apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJob",
           "spec": {"runtimeRef": {"name": "torch-distributed"}, "trainer": {"numNodes": 2}}}
    label_trainjob(job, {TRIAL_LABEL: "t"}, {"KATIB_TRIAL_NAME": "t"}, fenced=True)
    assert trainjob_escapes(job) == []
    [patch] = job["spec"]["runtimePatches"]
    pod = patch["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]
    assert pod["spec"] == {"automountServiceAccountToken": False}


def test_an_invalid_manifest_fails_the_trial_naming_the_field(sqlite_store, tmp_path, cluster):
    doc = _one(python_command("print('x=1')"))
    doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]["ports"] = [{"port": 80}]
    _, (t,) = run(sqlite_store, tmp_path, doc, cluster)
    assert t.state == "Failed"
    message = next(c.message for c in t.conditions if c.type == "Failed")
    assert "is not valid Kubernetes" in message and "spec.template.spec.containers.0.ports.0" in message
    assert cluster.created == []  # nothing half-made reached the cluster


def test_every_example_template_renders_a_valid_manifest(tmp_path):
    """Each example's trial template, rendered as the executor would send it."""
    from katib.controller._controller import Controller as _C  # noqa: F401 - the renderer is the controller's
    from katib.spec import TrialMeta, render

    for path in sorted((REPO / "examples").glob("**/*.yaml")):
        exp = admit(yaml.safe_load(path.read_text()))
        tt = exp.spec.trial_template
        assert tt is not None
        params = {p.reference: "1" for p in tt.trial_parameters or []}
        manifest = render(tt, params, TrialMeta(name="t-1", namespace="kubeflow", labels={}))
        manifest.setdefault("metadata", {}).update(name="t-1", namespace="kubeflow")
        assert manifest_errors(manifest) == [], path.name


def test_a_job_deleted_outside_katib_is_created_again_as_katib_does(sqlite_store, tmp_path, cluster):
    # Katib's trial controller (reconcileJob): a running trial's job not found is created
    # again. It used to fail the trial here, counting against maxFailedTrialCount.
    import threading

    marker = tmp_path / "ran-once"
    code = (f"import os, time\nif not os.path.exists({str(marker)!r}):\n    open({str(marker)!r}, 'w').close()\n"
            "    time.sleep(30)\nprint('loss=0.25')\n")
    doc = _one(python_command(code))

    def delete_soon():
        deadline = time.time() + 20
        while time.time() < deadline:
            jobs = cluster.objects("jobs")
            if jobs and marker.exists():
                cluster.custom.delete_namespaced_custom_object("batch", "v1", jobs[0]["metadata"]["namespace"], "jobs",
                                                               jobs[0]["metadata"]["name"])
                return
            time.sleep(0.1)

    threading.Thread(target=delete_soon, daemon=True).start()
    started = time.time()
    _, (t,) = run(sqlite_store, tmp_path, doc, cluster)
    assert t.state == "Succeeded" and time.time() - started < 25, t.conditions
    assert t.objective == 0.25
    assert [j["metadata"]["name"] for j in cluster.created] == [t.name, t.name]
    log = (tmp_path / "runs" / "default" / "demo" / t.name / "trial.log").read_text()
    assert "was deleted outside katib; created again" in log


def test_a_jobs_retry_pod_is_read_after_its_failed_first_pod(sqlite_store, tmp_path, cluster):
    # A batch Job with restartPolicy Never makes a new pod after a failed one (backoffLimit):
    # Katib's webhook gives each primary pod its collector. Only the first pod's log was read,
    # and the trial whose retry printed its metric ended MetricsUnavailable.
    marker = tmp_path / "failed-once"
    code = (f"import os, sys\nif not os.path.exists({str(marker)!r}):\n    open({str(marker)!r}, 'w').close()\n"
            "    print('attempt 1: CUDA error'); sys.exit(1)\nprint('loss=0.3')\n")
    doc = _one(python_command(code))
    doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["backoffLimit"] = 1
    _, (t,) = run(sqlite_store, tmp_path, doc, cluster)
    assert t.state == "Succeeded" and t.objective == 0.3, t.conditions
    log = (tmp_path / "runs" / "default" / "demo" / t.name / "trial.log").read_text()
    assert log.index("attempt 1: CUDA error") < log.index("loss=0.3")


def test_a_jobs_end_seen_before_its_pod_ran_waits_for_the_pods_log(sqlite_store, tmp_path, cluster):
    # The job and pod watches are separate streams: a Complete job seen while its pod still
    # showed Pending ended the trial at once, with an empty log (MetricsUnavailable).
    _, (t,) = run(sqlite_store, tmp_path, _one(python_command("print('loss=0.4')"), {"FAKE_KUBELET": "job-first"}), cluster)
    assert t.state == "Succeeded" and t.objective == 0.4, t.conditions


def test_manifest_errors_for_a_custom_resource_point_into_its_pod_templates():
    job = pytorchjob(["python", "-c", "print(1)"])["spec"]["trialTemplate"]["trialSpec"]
    job["metadata"] = {"name": "t"}
    job["spec"]["pytorchReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0]["command"] = "python train.py"
    errors = manifest_errors(job)
    assert len(errors) == 1 and errors[0].startswith("spec.pytorchReplicaSpecs.Worker.template.spec.containers.0.command:")




def test_katib_run_with_a_kubeconfig(tmp_path, cluster):
    """`katib run --executor kubernetes --kubeconfig …`, as a user points it at a cluster."""
    import subprocess
    import sys

    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "emulator",
        "clusters": [{"name": "emulator", "cluster": {"server": cluster.url}}],
        "users": [{"name": "me", "user": {"token": "not-checked"}}],
        "contexts": [{"name": "emulator", "context": {"cluster": "emulator", "user": "me"}}],
    }))
    doc = yaml.safe_load((REPO / "examples" / "grid.yaml").read_text())
    doc["spec"].update(maxTrialCount=2, parallelTrialCount=2, maxFailedTrialCount=1)
    path = REPO / "examples" / f".kube-{tmp_path.name}.yaml"  # beside the example, for its relative command
    path.write_text(yaml.safe_dump(doc))
    try:
        result = subprocess.run([sys.executable, "-m", "katib", "run", str(path), "--db", str(tmp_path / "k.db"),
                                 "--executor", "kubernetes", "--kubeconfig", str(kubeconfig), "--tick", "0.2"],
                                capture_output=True, text=True, timeout=300)
    finally:
        path.unlink()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Succeeded (ExperimentMaxTrialsReached)" in result.stdout
    assert len(cluster.created) == 2 and {j["kind"] for j in cluster.created} == {"Job"}


def test_collectors_a_cluster_cannot_reach_are_refused():
    from katib.controller import runnable_errors

    doc = yaml.safe_load((REPO / "examples" / "file-metrics-collector.yaml").read_text())
    assert runnable_errors(admit(doc), "kubernetes") == []  # File: Katib's sidecar (test_kubernetes_sidecar.py)
    # Custom: the user's container injected; PrometheusMetric: scraped through the pod proxy.
    doc["spec"]["metricsCollectorSpec"] = {"collector": {"kind": "PrometheusMetric"}}
    assert runnable_errors(admit(doc), "kubernetes") == []
    doc["spec"]["metricsCollectorSpec"] = {"collector": {"kind": "Custom", "customCollector": {"name": "c", "image": "i"}}}
    assert runnable_errors(admit(doc), "kubernetes") == []


PUSH = "import katib\nfor i in range(3):\n    katib.report_metrics({'loss': 0.5 - i / 10})\n# ${trialParameters.x}"


def test_pods_push_metrics_to_the_katib_server(sqlite_store, tmp_path, cluster):
    """The Push collector in a cluster: report_metrics in the pod posts to katib server's API."""
    import socket
    import threading

    import uvicorn

    from api import create_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(sqlite_store, tmp_path / "runs", tmp_path, resume=False, executor="kubernetes")
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            time.sleep(0.05)
        doc = _one(["python3", "-c", PUSH], metricsCollectorSpec={"collector": {"kind": "Push"}})
        _, (t,) = run(sqlite_store, tmp_path, doc, cluster, push_url=f"http://127.0.0.1:{port}")
    finally:
        server.should_exit = True
        thread.join(10)
    assert t.state == "Succeeded", t.conditions
    assert t.observation["loss"] == {"min": "0.3", "max": "0.5", "latest": "0.3"}
    env = {e["name"]: e["value"] for e in container_of(cluster.created[0])["env"]}
    assert env["KATIB_PUSH_URL"] == f"http://127.0.0.1:{port}" and env["KATIB_NAMESPACE"] == "default"


def test_push_without_a_server_address_is_a_clear_failure(sqlite_store, tmp_path, cluster):
    doc = _one(["python3", "-c", PUSH], metricsCollectorSpec={"collector": {"kind": "Push"}})
    _, (t,) = run(sqlite_store, tmp_path, doc, cluster)
    assert t.state == "Failed" and "--push-url" in next(c.message for c in t.conditions if c.type == "Failed")
    assert cluster.created == []


def test_under_auth_a_pod_pushes_with_a_token_for_its_own_trial_only(sqlite_store, tmp_path, cluster):
    """The pod gets a token made for its trial (never the server's own), which the --auth
    server takes on that trial's push endpoint."""
    import socket
    import threading

    import uvicorn

    from api import create_app
    from katib._pushtoken import PushTokens
    from katib.store import UserStore

    UserStore(sqlite_store).add_user("admin", admin=True)
    tokens = PushTokens.load(tmp_path / "push-secret")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(sqlite_store, tmp_path / "runs", tmp_path, resume=False, executor="kubernetes", auth=True,
                     push_tokens=tokens)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    executor = KubernetesExecutor(api_client=cluster.api, watch_timeout=5, push_url=f"http://127.0.0.1:{port}",
                                  push_tokens=tokens)
    try:
        while not server.started:
            time.sleep(0.05)
        doc = _one(["python3", "-c", PUSH], metricsCollectorSpec={"collector": {"kind": "Push"}})
        ctl = Controller(sqlite_store, executor=executor, runs_root=tmp_path / "runs", tick=0.1)
        rec, _ = ctl.submit(admit(doc), tmp_path)
        ctl.run(rec.namespace, rec.name)
        (t,) = sqlite_store.list_trials(rec.id)
    finally:
        executor.close()
        server.should_exit = True
        thread.join(10)
    assert t.state == "Succeeded", t.conditions
    assert t.observation["loss"]["latest"] == "0.3"
    env = {e["name"]: e["value"] for e in container_of(cluster.created[0])["env"]}
    assert env["KATIB_API_TOKEN"] == tokens.token("default", t.name)


def test_an_argo_workflows_pods_carry_the_trials_labels(tmp_path):
    # Argo makes a Workflow's pods with the labels of spec.podMetadata and of each template's
    # metadata, not the Workflow's own: the executor's pod watch (the experiment's label) and
    # its bookkeeping (the trial's) never saw them, so no log was read. Katib's webhook
    # labels every pod under a trial; here the Workflow asks Argo to.
    from katib.spec import EXPERIMENT_LABEL, TRIAL_LABEL, TrialMeta, render
    from trials._executor import TrialJob
    from trials._kubernetes_manifest import trial_manifest

    doc = yaml.safe_load((REPO / "tests" / "data" / "katib-examples" / "argo-workflow.yaml").read_text())
    tt = admit(doc).spec.trial_template
    spec = render(tt, {"lr": "0.02"}, TrialMeta(name="argo-abc", namespace="kubeflow", labels={}))
    job = TrialJob(name="argo-abc", experiment="argo-workflow", namespace="kubeflow", run_spec=spec,
                   primary_container="main", workdir=tmp_path, trial_dir=tmp_path / "t",
                   success_condition=tt.success_condition, failure_condition=tt.failure_condition,
                   primary_pod_labels=tt.primary_pod_labels)
    manifest = trial_manifest(job)
    labels = manifest["spec"]["podMetadata"]["labels"]
    assert labels[TRIAL_LABEL] == "argo-abc" and labels[EXPERIMENT_LABEL] == "argo-workflow"
    # the primary pod's own label stays on its template, where Argo reads it
    assert any((t.get("metadata") or {}).get("labels", {}).get("katib.kubeflow.org/model-training") == "true"
               for t in manifest["spec"]["templates"])
