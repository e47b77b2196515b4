"""A trial's rendered counts are checked again when it launches, and every loop over a
stored run spec's count (a PyTorchJob's replicas, a TrainJob's nodes) refuses one past
``KATIB_MAX_REPLICAS``: an experiment stored before placeholders in counts were checked
fails that trial alone (``LaunchFailed``, naming the field and the limit), never the
experiment or the server. The security review: the controller built 200,001 members for a
PyTorchJob whose ``Worker.replicas`` was ``${trialParameters.n}`` with ``n`` = 200,000.

Each count here is just past the limit (65): old code built those processes (cheaply)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from katib.controller import Controller, admit
from katib.errors import ValidationError
from katib.runtimes import resolve
from tests.conftest import experiment
from trials import LaunchError, TrialJob
from trials._members import replica_processes

LIMIT = "must be at most 64 (the server's limit; raise it with KATIB_MAX_REPLICAS)"


@pytest.fixture(autouse=True)
def _default_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KATIB_MAX_REPLICAS", raising=False)


def pytorch_doc() -> dict:
    doc = experiment(maxTrialCount=1, parallelTrialCount=1, maxFailedTrialCount=1)
    doc["spec"]["parameters"].append({"name": "n", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "2"}})
    doc["spec"]["trialTemplate"]["trialParameters"].append({"name": "n", "reference": "n"})
    replica = {"replicas": 1, "template": {"spec": {"containers": [
        {"name": "main", "image": "x", "command": ["true", "${trialParameters.x}"]}]}}}
    doc["spec"]["trialTemplate"]["trialSpec"] = {
        "apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob",
        "spec": {"pytorchReplicaSpecs": {"Master": replica, "Worker": {**copy.deepcopy(replica), "replicas": "${trialParameters.n}"}}}}
    return doc


def run_stored_past_the_limit(doc: dict, store, tmp_path):
    """Run ``doc`` as old code stored it, with its parameter ``n`` fixed at 65 (past the
    limit), and return the one trial and its last condition."""
    exp = admit(doc)
    n = next(p for p in exp.spec.parameters or [] if p.name == "n")
    assert n.feasible_space is not None
    n.feasible_space.min = n.feasible_space.max = "65"
    ctl = Controller(store, runs_root=tmp_path / "runs", tick=0.05)
    rec, _ = ctl.submit(exp, tmp_path)
    ctl.run(rec.namespace, rec.name)
    [t] = store.list_trials(rec.id)
    return t, t.conditions[-1]


def test_a_stored_template_whose_count_renders_past_the_limit_fails_that_trial(sqlite_store, tmp_path):
    t, failed = run_stored_past_the_limit(pytorch_doc(), sqlite_store, tmp_path)
    assert (t.state, failed.reason) == ("Failed", "LaunchFailed"), (t.state, t.conditions)
    assert failed.message == f"trialSpec.spec.pytorchReplicaSpecs.Worker.replicas: {LIMIT}"
    assert not t.handle  # nothing was started
    assert not (tmp_path / "runs" / "default" / "demo" / t.name / "worker-0.log").exists()


def job(run_spec: dict, trial_dir: Path) -> TrialJob:
    return TrialJob(name="t", experiment="e", namespace="default", run_spec=run_spec, primary_container="main",
                    workdir=Path("."), trial_dir=trial_dir)


def pytorch_spec(**replicas: object) -> dict:
    container = {"name": "main", "image": "x", "command": ["true"]}
    return {"kind": "PyTorchJob", "spec": {"pytorchReplicaSpecs": {
        role: {"replicas": n, "template": {"spec": {"containers": [container]}}} for role, n in replicas.items()}}}


@pytest.mark.parametrize(("replicas", "message"), [
    ({"Master": 1, "Worker": "65"}, f"trialSpec.spec.pytorchReplicaSpecs.Worker.replicas: {LIMIT}"),
    ({"Master": 1, "Worker": "many"}, "trialSpec.spec.pytorchReplicaSpecs.Worker.replicas: must be a non-negative integer (got 'many')"),
    # many replica types of 64 each: at most five types' worth (TFJob has five) in all
    ({"Master": 64, **{f"Extra{i}": 64 for i in range(5)}}, "trialSpec.spec.pytorchReplicaSpecs: at most 320 replicas in all"),
])
def test_a_stored_replica_count_past_the_limit_is_refused_before_any_member_is_built(tmp_path, replicas, message):
    with pytest.raises(LaunchError) as info:
        replica_processes(job(pytorch_spec(**replicas), tmp_path))
    assert str(info.value).startswith(message), str(info.value)


def test_replicas_within_the_limit_still_run(tmp_path, monkeypatch):
    assert len(replica_processes(job(pytorch_spec(Master=1, Worker="64"), tmp_path))) == 65
    monkeypatch.setenv("KATIB_MAX_REPLICAS", "65")
    assert len(replica_processes(job(pytorch_spec(Master=1, Worker=65), tmp_path))) == 66


def trainjob(num_nodes: object) -> dict:
    return {"apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJob",
            "spec": {"runtimeRef": {"name": "torch-distributed"}, "trainer": {"numNodes": num_nodes, "command": ["true"]}}}


@pytest.mark.parametrize("num_nodes", ["65", 65, "2000000", 10**30])
def test_a_stored_trainjobs_nodes_past_the_limit_do_not_resolve(num_nodes):
    with pytest.raises(ValidationError, match=r"spec\.trainer\.numNodes: must be at most 64 "):
        resolve(trainjob(num_nodes), "default")
    assert resolve(trainjob("64"), "default").num_nodes == 64


@pytest.mark.parametrize("num_nodes", ["65", 65])
def test_a_stored_trainjobs_nodes_past_the_limit_fail_its_launch(tmp_path, num_nodes):
    with pytest.raises(LaunchError, match=r"trialSpec\.spec\.trainer\.numNodes: must be at most 64 "):
        replica_processes(job(trainjob(num_nodes), tmp_path))


def test_a_stored_jobsets_count_past_the_limit_fails_that_trial(sqlite_store, tmp_path):
    """The review: a JobSet's ``replicatedJobs[].replicas`` was checked neither at admission
    nor at launch; old code ran this trial (the local executor runs its primary container)."""
    doc = pytorch_doc()
    container = {"name": "main", "image": "x", "command": ["true", "${trialParameters.x}"]}
    doc["spec"]["trialTemplate"].update(
        successCondition='status.conditions.#(type=="Completed")#|#(status=="True")#',
        failureCondition='status.conditions.#(type=="Failed")#|#(status=="True")#',
        trialSpec={"apiVersion": "jobset.x-k8s.io/v1alpha2", "kind": "JobSet", "spec": {"replicatedJobs": [
            {"name": "workers", "replicas": "${trialParameters.n}",
             "template": {"spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [container]}}}}}]}})
    t, failed = run_stored_past_the_limit(doc, sqlite_store, tmp_path)
    assert (t.state, failed.reason) == ("Failed", "LaunchFailed"), (t.state, t.conditions)
    assert failed.message == f"trialSpec.spec.replicatedJobs[0].replicas: {LIMIT}"
    assert not t.handle
