"""Trials queued by Kueue on the Kubernetes executor (issue 16), against the kmock emulator
(kube_cluster.py) with a fake Kueue controller (kube_kueue.py) that admits late or never:
the job is labelled for its queue and priority and created suspended (valid Kubernetes);
while it waits the trial runs on, says so in its Running condition (naming the queue and
Kueue's message) and its activeDeadlineSeconds does not count; once admitted it completes;
a queued trial is stopped cleanly. And a pod waiting for a GPU says so."""

from __future__ import annotations

import threading
import time

import pytest

pytest.importorskip("kmock")

from katib.controller import Controller, admit  # noqa: E402
from tests.conftest import REPO, experiment, python_command  # noqa: E402
from tests.trials_tests.kube_cluster import FakeCluster  # noqa: E402
from tests.trials_tests.kube_kueue import PENDING, FakeKueue  # noqa: E402
from trials import LaunchError, TrialJob  # noqa: E402
from trials._kubernetes import KubernetesExecutor, manifest_errors  # noqa: E402
from trials._kubernetes_kueue import enqueue  # noqa: E402

QUEUE, PRIORITY = "kueue.x-k8s.io/queue-name", "kueue.x-k8s.io/priority-class"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    cluster = FakeCluster(REPO / "examples", tmp_path_factory.mktemp("pod-logs"), gpus=1)
    kueue = FakeKueue(cluster)
    yield cluster, kueue
    kueue.close()
    cluster.close()


def _running(trial) -> tuple[str, str]:
    """The reason and message of a trial's Running condition."""
    cond = next((c for c in trial.conditions if c.type == "Running"), None)
    return (cond.reason or "", cond.message or "") if cond is not None else ("", "")


def _doc(name: str, code: str, deadline: int | None = None, **spec) -> dict:
    doc = experiment(name=name, command=python_command(code), **spec)
    job = doc["spec"]["trialTemplate"]["trialSpec"]
    if deadline is not None:
        job["spec"]["activeDeadlineSeconds"] = deadline
    return doc


def _start(store, tmp_path, cluster, doc, **options):
    """The experiment run by a controller in a thread; returns (record, stop, thread, executor)."""
    executor = KubernetesExecutor(api_client=cluster.api, watch_timeout=5, **options)
    ctl = Controller(store, executor=executor, runs_root=tmp_path / "runs", tick=0.1)
    rec, _ = ctl.submit(admit(doc), tmp_path)
    stop = threading.Event()
    thread = threading.Thread(target=ctl.run, args=(rec.namespace, rec.name), kwargs={"stop": stop}, daemon=True)
    thread.start()
    return rec, stop, thread, executor


def _wait_for(what, timeout=20.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = what()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError("not reached in time")


def test_a_queue_that_admits_late(sqlite_store, tmp_path, world, monkeypatch):
    """Created suspended in the queue with its priority; Pending-in-queue meanwhile (the
    deadline, 3 s and 1.5 s of grace, not counting: the queue admits at 5 s); completes after
    admission, with the whole deadline left for a loaded machine to run it in."""
    import trials._kubernetes_status as status

    monkeypatch.setattr(status, "DEADLINE_GRACE", 1.5)
    cluster, kueue = world
    kueue.admit_after = 5.0
    doc = _doc("kueue-late", "print('loss=0.25')", deadline=3, maxTrialCount=2, parallelTrialCount=2)
    rec, _, thread, executor = _start(sqlite_store, tmp_path, cluster, doc, kueue_queue="team-a",
                                      kueue_priority_class="high")
    try:
        waiting = _wait_for(lambda: [t for t in sqlite_store.list_trials(rec.id)
                                     if _running(t)[0] == "WaitingForAdmission" and PENDING in _running(t)[1]])
        _, message = _running(waiting[0])  # the queue, and what Kueue says in its Workload
        assert message == f"waiting in Kueue queue 'team-a' for admission (its Job is suspended): {PENDING}"
        thread.join(60)
    finally:
        executor.close()
    trials = sqlite_store.list_trials(rec.id)
    assert [t.state for t in trials] == ["Succeeded", "Succeeded"], [t.conditions for t in trials]
    jobs = [j for j in cluster.created if j["metadata"]["name"] in {t.name for t in trials}]
    for job in jobs:
        name = job["metadata"]["name"]
        assert job["spec"]["suspend"] is True and job["metadata"]["labels"][QUEUE] == "team-a"
        assert kueue.priorities[name] == "high"
        assert manifest_errors(job) == []
        assert kueue.admitted[name] - kueue.appeared[name] >= 4.9  # past its deadline (3 s) and grace, queued
    for t in trials:  # it lived past its deadline, all but the end of it in the queue
        assert t.completion_time - t.start_time > 4.5
    # The finished jobs are deleted, and their Workloads with them.
    _wait_for(lambda: not cluster.objects("jobs") and not cluster.objects("workloads"), 10)


def test_a_queue_that_never_admits_does_not_time_out_and_stops_cleanly(sqlite_store, tmp_path, world, monkeypatch):
    import trials._kubernetes_status as status

    monkeypatch.setattr(status, "DEADLINE_GRACE", 0.0)
    cluster, kueue = world
    kueue.admit_after = None
    doc = _doc("kueue-never", "print('loss=0.5')", deadline=1, maxTrialCount=1, parallelTrialCount=1)
    # The queue named by the template itself (no --kueue-queue).
    doc["spec"]["trialTemplate"]["trialSpec"]["metadata"] = {"labels": {QUEUE: "team-b"}}
    rec, stop, thread, executor = _start(sqlite_store, tmp_path, cluster, doc)
    try:
        _wait_for(lambda: cluster.objects("workloads"))
        time.sleep(2.0)  # twice its activeDeadlineSeconds, in the queue
        (t,) = sqlite_store.list_trials(rec.id)
        assert t.state == "Running" and _running(t)[0] == "WaitingForAdmission", t.conditions
        assert "'team-b'" in _running(t)[1]
        stop.set()  # the experiment's life ends (katib run interrupted) with the trial queued
        thread.join(30)
    finally:
        executor.close()
    (t,) = sqlite_store.list_trials(rec.id)
    assert t.state != "Failed" and not cluster.procs
    _wait_for(lambda: not cluster.objects("jobs") and not cluster.objects("workloads"), 10)


def test_a_queued_trial_is_stopped_and_adopted_while_it_waits(tmp_path, world):
    cluster, kueue = world
    kueue.admit_after = None
    spec = {"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "main", "image": "python:3.11", "command": python_command("print('loss=1')")}]}}}}

    def job(name):
        return TrialJob(name=name, experiment="kueue-stop", namespace="default", run_spec=spec, primary_container="main",
                        workdir=REPO / "examples", trial_dir=tmp_path / name, success_condition="status.conditions.#(type==\"Complete\")#|#(status==\"True\")#",
                        failure_condition="status.conditions.#(type==\"Failed\")#|#(status==\"True\")#")

    first = KubernetesExecutor(api_client=cluster.api, watch_timeout=5, kueue_queue="team-c")
    second = KubernetesExecutor(api_client=cluster.api, watch_timeout=5)
    try:
        a, b = first.launch(job("kueue-stop-a")), first.launch(job("kueue-stop-b"))
        _wait_for(lambda: first.poll(a).reason == "WaitingForAdmission" and len(cluster.objects("workloads")) == 2)
        first.stop(a)
        assert first.poll(a).reason == "Killed"
        # A restarted controller adopts the other, still queued, and follows it to its end.
        assert second.adopt(b, job("kueue-stop-b"))
        _wait_for(lambda: second.poll(b).reason == "WaitingForAdmission")
        kueue.admit("kueue-stop-b")
        state = _wait_for(lambda: (lambda s: s if s.finished else None)(second.poll(b)))
        assert state.succeeded, state
        second.release(b)
    finally:
        first.close()
        second.close()
    _wait_for(lambda: not cluster.objects("jobs") and not cluster.objects("workloads"), 10)


def test_a_preempted_trial_waits_again_and_its_new_pods_log_is_read(sqlite_store, tmp_path, world):
    """Kueue evicts the running job (suspends it again: its pod goes): the trial waits
    again, saying so, and once re-admitted its new pod's output is read too."""
    cluster, kueue = world
    kueue.admit_after = 0.0
    starts = tmp_path / "starts"
    starts.mkdir()
    code = (f"import os, time\nd = {str(starts)!r}\nn = len(os.listdir(d))\nopen(os.path.join(d, str(n)), 'w').close()\n"
            "print('loss=' + ('0.9' if n == 0 else '0.1'), flush=True)\ntime.sleep(30 if n == 0 else 0)\n")
    doc = _doc("kueue-evict", code, maxTrialCount=1, parallelTrialCount=1)
    rec, _, thread, executor = _start(sqlite_store, tmp_path, cluster, doc, kueue_queue="team-d")
    try:
        (t,) = _wait_for(lambda: sqlite_store.list_trials(rec.id))
        log = tmp_path / "runs" / "default" / "kueue-evict" / t.name / "trial.log"
        _wait_for(lambda: log.exists() and "loss=0.9" in log.read_text())
        kueue.evict(t.name)
        evicted = _wait_for(lambda: [t for t in sqlite_store.list_trials(rec.id)
                                     if _running(t)[1].startswith("evicted by Kueue (Preempted: ")])
        assert evicted[0].state == "Running" and "waiting in Kueue queue 'team-d' to be admitted again" in _running(evicted[0])[1]
        kueue.admit(t.name)
        thread.join(60)
    finally:
        executor.close()
    (t,) = sqlite_store.list_trials(rec.id)
    assert t.state == "Succeeded" and sorted(p.name for p in starts.iterdir()) == ["0", "1"]
    assert t.observation["loss"]["latest"] == "0.1"  # the second pod's, read after the first's


def test_a_pod_waiting_for_a_gpu_says_so(sqlite_store, tmp_path, world):
    """One GPU, two trials that want one each: the second's Running condition says it waits
    for a GPU until the first has finished."""
    cluster, _ = world
    release = tmp_path / "release"  # the trials hold their GPU until the test has seen the wait
    code = f"import os, time\nwhile not os.path.exists({str(release)!r}):\n    time.sleep(0.05)\nprint('loss=1')"
    doc = _doc("gpu-wait", code, maxTrialCount=2, parallelTrialCount=2)
    container = doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]
    container["resources"] = {"limits": {"nvidia.com/gpu": 1}}
    rec, _, thread, executor = _start(sqlite_store, tmp_path, cluster, doc)
    try:
        waiting = _wait_for(lambda: [t for t in sqlite_store.list_trials(rec.id) if _running(t)[0] == "WaitingForGPU"])
        assert _running(waiting[0])[1].startswith(f"waiting for a GPU: pod {waiting[0].name}-")
        assert "Insufficient nvidia.com/gpu" in _running(waiting[0])[1]
        release.touch()
        thread.join(60)
    finally:
        executor.close()
    assert [t.state for t in sqlite_store.list_trials(rec.id)] == ["Succeeded", "Succeeded"]


def test_kueue_labels_and_suspension_by_kind():
    def job(kind: str, api: str, **spec) -> dict:
        return {"apiVersion": api, "kind": kind, "metadata": {"labels": {}}, "spec": spec}

    pytorch = job("PyTorchJob", "kubeflow.org/v1", pytorchReplicaSpecs={})
    assert enqueue(pytorch, "q", None) == "q" and pytorch["spec"]["runPolicy"] == {"suspend": True}
    trainjob = job("TrainJob", "trainer.kubeflow.org/v1alpha1", runtimeRef={"name": "torch"})
    assert enqueue(trainjob, "q", "low") == "q" and trainjob["spec"]["suspend"] is True
    assert trainjob["metadata"]["labels"] == {QUEUE: "q", PRIORITY: "low"}
    own = job("Job", "batch/v1")
    own["metadata"]["labels"] = {QUEUE: "mine", PRIORITY: "urgent"}
    assert enqueue(own, "default-q", "low") == "mine" and own["metadata"]["labels"][PRIORITY] == "urgent"
    plain = job("Job", "batch/v1")
    assert enqueue(plain, None, None) is None and "suspend" not in plain["spec"]  # no queue: not suspended
    with pytest.raises(LaunchError, match=r"metadata.labels\[kueue.x-k8s.io/queue-name\]: 'a b' is not a valid"):
        enqueue(job("Job", "batch/v1"), "a b", None)
    with pytest.raises(LaunchError, match="Kueue does not queue a argoproj.io/v1alpha1 Workflow"):
        enqueue(job("Workflow", "argoproj.io/v1alpha1"), "q", None)
    unqueued = job("Job", "batch/v1")
    assert enqueue(unqueued, None, "high") is None and unqueued["metadata"]["labels"] == {}
    unqueued["metadata"]["labels"] = {PRIORITY: "high"}  # the template's own, with no queue
    with pytest.raises(LaunchError, match="a Kueue priority class needs a queue"):
        enqueue(unqueued, None, None)
    with pytest.raises(Exception, match="kueue_queue: '-x' is not a valid label value"):
        KubernetesExecutor(api_client=object(), kueue_queue="-x")


def test_katib_run_kueue_queue(tmp_path, world):
    """`katib run --executor kubernetes --kueue-queue … --kueue-priority-class …`: the jobs
    wait in the queue, the run's output says so, and they complete once admitted."""
    import yaml
    from typer.testing import CliRunner

    from katib.cli import app

    cluster, kueue = world
    kueue.admit_after = 1.0
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "emulator",
        "clusters": [{"name": "emulator", "cluster": {"server": cluster.url}}],
        "users": [{"name": "me", "user": {"token": "not-checked"}}],
        "contexts": [{"name": "emulator", "context": {"cluster": "emulator", "user": "me"}}]}))
    spec = tmp_path / "exp.yaml"
    spec.write_text(yaml.safe_dump(_doc("kueue-cli", "print('loss=0.5')", maxTrialCount=1, parallelTrialCount=1)))
    args = ["run", str(spec), "--db", str(tmp_path / "k.db"), "--tick", "0.1", "--executor", "kubernetes",
            "--kubeconfig", str(kubeconfig)]
    bad = CliRunner().invoke(app, [*args, "--kueue-queue", "Team A"])
    assert bad.exit_code != 0 and "--kueue-queue: 'Team A' is not a valid label value" in bad.output + str(bad.exception)
    result = CliRunner().invoke(app, [*args, "--kueue-queue", "team-e", "--kueue-priority-class", "low"])
    assert result.exit_code == 0, (result.output, result.exception)
    assert "Waiting    WaitingForAdmission: waiting in Kueue queue 'team-e' for admission" in result.output
    assert "Succeeded (ExperimentMaxTrialsReached)" in result.output
    (job,) = [j for j in cluster.created if j["metadata"]["labels"]["katib.kubeflow.org/experiment"] == "kueue-cli"]
    assert job["metadata"]["labels"][QUEUE] == "team-e" and job["metadata"]["labels"][PRIORITY] == "low"
    assert job["spec"]["suspend"] is True


def test_katib_server_kueue_queue(tmp_path, world, monkeypatch):
    """`katib server --executor kubernetes --kueue-queue … --kueue-priority-class …` makes
    executors with them (its serving caught); another executor refuses the flags."""
    import yaml
    from typer.testing import CliRunner

    import katib.cli._server as server_cli
    from katib.cli import app

    cluster, _ = world
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "emulator",
        "clusters": [{"name": "emulator", "cluster": {"server": cluster.url}}],
        "users": [{"name": "me", "user": {"token": "not-checked"}}],
        "contexts": [{"name": "emulator", "context": {"cluster": "emulator", "user": "me"}}]}))
    served: list = []
    monkeypatch.setattr(server_cli, "_serve", lambda application, *_, **__: served.append(application))
    args = ["server", "--db", str(tmp_path / "k.db"), "--kueue-queue", "team-f", "--kueue-priority-class", "low"]
    local = CliRunner().invoke(app, args)
    assert local.exit_code != 0 and "--kueue-queue is for --executor kubernetes" in local.output + str(local.exception)
    result = CliRunner().invoke(app, [*args, "--executor", "kubernetes", "--kubeconfig", str(kubeconfig)])
    assert result.exit_code == 0 and len(served) == 1, (result.output, result.exception)
    executor = served[0].state.katib.manager.executor_factory()
    try:
        assert (executor.kueue_queue, executor.kueue_priority_class) == ("team-f", "low")
    finally:
        executor.close()
