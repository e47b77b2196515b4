"""kill -9 a `katib run --executor kubernetes` while its jobs run; `katib resume` finds
each trial's job by name and labels and watches it on (against the kmock emulator of
kube_cluster.py): no job is created twice, the pod's log is copied on without
duplicating it, and no observation is stored twice."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import pytest
import yaml

pytest.importorskip("kmock")

from katib.store import Store  # noqa: E402
from tests.conftest import REPO, experiment  # noqa: E402
from tests.test_crash_recovery import katib, wait_for  # noqa: E402
from tests.trials_tests.kube_cluster import FakeCluster  # noqa: E402
from trials import TrialJob  # noqa: E402
from trials._kubernetes import KubernetesExecutor  # noqa: E402

# Each start leaves a marker (a second job for a trial would leave two).
TRIAL = """
import os, time
open(os.path.join({markers!r}, os.environ["KATIB_TRIAL_NAME"] + "." + str(os.getpid())), "w").close()
x = float("${{trialParameters.x}}")
for step in range(3):
    print(f"loss={{x + step}}", flush=True)
    time.sleep(1.0)
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = FakeCluster(REPO / "examples", tmp_path_factory.mktemp("pod-logs"))
    yield c
    c.close()


def _kubeconfig(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "fake",
        "clusters": [{"name": "fake", "cluster": {"server": url}}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
        "users": [{"name": "fake", "user": {}}],
    }))
    return path


def test_kill_9_then_resume_watches_the_jobs_on(tmp_path, cluster):
    db, markers = tmp_path / "katib.db", tmp_path / "markers"
    markers.mkdir()
    spec = tmp_path / "exp.yaml"
    code = TRIAL.format(markers=str(markers))
    spec.write_text(yaml.safe_dump(experiment(command=[sys.executable, "-c", code], maxTrialCount=4,
                                              parallelTrialCount=2, maxFailedTrialCount=0)))
    kube = ["--executor", "kubernetes", "--kubeconfig", str(_kubeconfig(tmp_path, cluster.url))]
    first = katib("run", str(spec), "--db", str(db), "--tick", "0.05", *kube)
    store = Store(str(db))

    def running_with_metrics() -> bool:
        try:
            rec = store.get_experiment("default", "demo")
        except Exception:
            return False
        running = [t for t in store.list_trials(rec.id) if t.state == "Running"]
        return len(running) == 2 and all(store.observations(t.id, "loss") for t in running)

    wait_for(running_with_metrics)
    first.send_signal(signal.SIGKILL)
    first.wait()
    rec = store.get_experiment("default", "demo")
    before = {t.name: t for t in store.list_trials(rec.id) if t.state == "Running"}

    again = katib("resume", "demo", "--db", str(db), "--tick", "0.05", *kube)
    output, _ = again.communicate(timeout=120)
    assert again.returncode == 0, output
    after = {t.name: t for t in store.list_trials(rec.id)}
    assert len(after) == 4 and {t.state for t in after.values()} == {"Succeeded"}
    # One job and one start per trial: the running ones were watched on, not created again.
    assert sorted(j["metadata"]["name"] for j in cluster.created if j["metadata"]["name"] in after) == sorted(after)
    assert sorted(p.name.rsplit(".", 1)[0] for p in markers.iterdir()) == sorted(after)
    for name, t in before.items():
        assert after[name].attempt == 0 and after[name].start_time == t.start_time
    for t in after.values():
        x = float(t.assignments[0]["value"])
        assert [float(o.value) for o in store.observations(t.id, "loss")] == [x, x + 1, x + 2]
        log = (tmp_path / "runs" / "default" / "demo" / t.name / "trial.log").read_text()
        assert log.count("loss=") == 3  # the log copied on from where it stopped, not twice


def test_a_job_that_is_gone_or_not_the_trials_is_refused(tmp_path, cluster):
    ex = KubernetesExecutor(api_client=cluster.api, watch_timeout=5)
    try:
        job = TrialJob(name="demo-gone", experiment="demo", namespace="default", run_spec={}, primary_container="main",
                       workdir=tmp_path, trial_dir=tmp_path / "demo-gone")
        handle = {"executor": "kubernetes", "apiVersion": "batch/v1", "kind": "Job", "plural": "jobs",
                  "namespace": "default", "name": "demo-gone"}
        refusal = ex.adopt(handle, job)
        assert not refusal and refusal.reason == "its Job default/demo-gone is gone"
        cluster.custom.create_namespaced_custom_object("batch", "v1", "default", "jobs", {
            "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "demo-gone", "labels": {"app": "other"}},
            "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [
                {"name": "main", "image": "x", "command": ["true"]}]}}}})
        refusal = ex.adopt(handle, job)
        assert not refusal and "is not this trial's Job" in refusal.reason
        assert not ex.owns(handle)
    finally:
        ex.close()
