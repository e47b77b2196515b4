"""Distributed training trials on one machine: a PyTorchJob's or TFJob's replicas as local
processes with the environment their training operator sets."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from katib.controller import Controller, admit
from tests.conftest import experiment, python_command
from trials import LaunchError, TrialJob
from trials._members import replica_processes


def job(kind_field: str, replicas: dict[str, int], command=None) -> TrialJob:
    container = {"name": "main", "image": "x", "command": command or ["python3", "-c", "pass"]}
    spec = {kind_field: {r: {"replicas": n, "template": {"spec": {"containers": [container]}}} for r, n in replicas.items()}}
    return TrialJob(name="t", experiment="e", namespace="default", run_spec={"spec": spec}, primary_container="main",
                    workdir=Path("."), trial_dir=Path("/tmp/x"))


def test_pytorchjob_replicas_get_ranks_and_one_master():
    members = replica_processes(job("pytorchReplicaSpecs", {"Worker": 2, "Master": 1}))
    assert [m.replica for m in members] == ["master-0", "worker-0", "worker-1"]
    assert [m.env["RANK"] for m in members] == ["0", "1", "2"]
    assert {m.env["WORLD_SIZE"] for m in members} == {"3"}
    assert len({m.env["MASTER_PORT"] for m in members}) == 1 and members[0].env["MASTER_ADDR"] == "127.0.0.1"
    assert [m.log_name for m in members] == ["trial.log", "worker-0.log", "worker-1.log"]


def test_tfjob_replicas_get_tf_config():
    members = replica_processes(job("tfReplicaSpecs", {"Chief": 1, "Worker": 2, "PS": 1}))
    configs = [json.loads(m.env["TF_CONFIG"]) for m in members]
    assert [c["task"] for c in configs] == [{"type": "chief", "index": 0}, {"type": "worker", "index": 0},
                                            {"type": "worker", "index": 1}, {"type": "ps", "index": 0}]
    cluster = configs[0]["cluster"]
    assert len(cluster["chief"]) == 1 and len(cluster["worker"]) == 2 and len(cluster["ps"]) == 1
    assert len({a for addresses in cluster.values() for a in addresses}) == 4


def test_mpijob_is_refused_locally():
    with pytest.raises(LaunchError, match="MPIJob trials need mpirun"):
        replica_processes(job("mpiReplicaSpecs", {"Launcher": 1}))


def pytorch_experiment(master: str, worker: str, workers: int = 1):
    doc = experiment(maxTrialCount=1, parallelTrialCount=1, maxFailedTrialCount=1)
    def replica(code: str, n: int) -> dict:
        return {"replicas": n, "template": {"spec": {"containers": [{"name": "main", "image": "x", "command": python_command(code)}]}}}
    doc["spec"]["trialTemplate"]["trialSpec"] = {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob",
                                                 "spec": {"pytorchReplicaSpecs": {"Master": replica(master, 1), "Worker": replica(worker, workers)}}}
    return admit(doc)


def test_replicas_run_together_and_the_masters_output_is_the_trials(sqlite_store, tmp_path):
    code = "import os; print('rank', os.environ['RANK'], 'of', os.environ['WORLD_SIZE']); print('loss=${trialParameters.x}')"
    ctl = Controller(sqlite_store, runs_root=tmp_path / "runs", tick=0.05)
    rec, _ = ctl.submit(pytorch_experiment(code, code, workers=2), tmp_path)
    ctl.run(rec.namespace, rec.name)
    t = sqlite_store.list_trials(rec.id)[0]
    assert t.state == "Succeeded"
    folder = tmp_path / "runs" / "default" / "demo" / t.name
    assert "rank 0 of 3" in (folder / "trial.log").read_text()
    assert "rank 2 of 3" in (folder / "worker-1.log").read_text()
    assert [r["name"] for r in t.handle["replicas"]] == ["master-0", "worker-0", "worker-1"]


def test_a_failing_worker_fails_the_trial_and_stops_the_master(sqlite_store, tmp_path):
    master = "import time; time.sleep(60); print('loss=${trialParameters.x}')"
    worker = "import sys; print('worker gives up'); sys.exit(4)"
    ctl = Controller(sqlite_store, runs_root=tmp_path / "runs", tick=0.05)
    rec, _ = ctl.submit(pytorch_experiment(master, worker), tmp_path)
    started = time.monotonic()
    ctl.run(rec.namespace, rec.name)
    assert time.monotonic() - started < 20
    t = sqlite_store.list_trials(rec.id)[0]
    assert t.state == "Failed" and "exited with code 4" in t.conditions[-1].message
    from tests.controller_tests.test_controller import _group_alive

    assert not any(_group_alive(r["pid"]) for r in t.handle["replicas"])


@pytest.mark.parametrize("role", ["../../../ns-b/exp-b/planted", "/home/srv/x", "Worker\n", "a.b"])
def test_a_replica_type_that_is_not_a_word_is_refused_it_names_files_the_server_opens(role):
    """A replica type names its log and exit files in the trial folder, which the server
    opens (appends to) outside the sandbox: "../../../ns-b/exp-b/planted" wrote into
    another tenant's folder."""
    from katib.errors import ValidationError

    with pytest.raises(LaunchError, match="replica type"):
        replica_processes(job("pytorchReplicaSpecs", {"Master": 1, role: 1}))
    doc = experiment(maxTrialCount=1, parallelTrialCount=1, maxFailedTrialCount=1)
    pod = {"template": {"spec": {"containers": [{"name": "main", "image": "x", "command": ["true"]}]}}}
    doc["spec"]["trialTemplate"]["trialSpec"] = {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob",
                                                 "spec": {"pytorchReplicaSpecs": {"Master": pod, role: pod}}}
    with pytest.raises(ValidationError) as info:
        admit(doc)
    assert any(e.path.endswith("pytorchReplicaSpecs") and "replica type" in e.message for e in info.value.errors)
