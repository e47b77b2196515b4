"""Kubeflow Trainer TrainJob trials (issue 13): Katib 0.19's defaults, the runtime resolved
(the built-in torch-distributed, others from YAML), and the nodes run as local processes with
torchrun's environment."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from katib.controller import Controller, admit
from katib.errors import ValidationError
from katib.runtimes import TORCH_DISTRIBUTED, Runtimes, registry, resolve
from tests.conftest import experiment
from trials import LaunchError, TrialJob
from trials._members import replica_processes

DATA = Path(__file__).resolve().parents[1] / "data" / "trainer"


def trainjob(trainer: dict, runtime: str = "torch-distributed") -> dict:
    return {"apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJob",
            "spec": {"runtimeRef": {"name": runtime}, "trainer": trainer}}


def test_katibs_trainjob_example_validates_with_katib_019s_defaults():
    exp = admit(yaml.safe_load((DATA / "trainjob-pytorch.yaml").read_text()))
    tt = exp.spec.trial_template
    assert tt is not None
    assert tt.success_condition == 'status.conditions.#(type=="Complete")#|#(status=="True")#'
    assert tt.failure_condition == 'status.conditions.#(type=="Failed")#|#(status=="True")#'
    assert tt.primary_pod_labels == {"jobset.sigs.k8s.io/replicatedjob-name": "node",
                                     "batch.kubernetes.io/job-completion-index": "0"}


@pytest.mark.parametrize(("trainer", "field", "rule"), [
    ({"numNodes": 0}, "spec.trainer.numNodes", "positive integer"),
    ({"command": "python train.py"}, "spec.trainer.command", "list of strings"),
    ({"resourcesPerNode": {"limits": {"cpu": "lots"}}}, "spec.trainer.resourcesPerNode.limits.cpu", "quantity"),
])
def test_a_bad_trainer_field_is_named(trainer, field, rule):
    doc = yaml.safe_load((DATA / "trainjob-pytorch.yaml").read_text())
    doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["trainer"].update(trainer)
    with pytest.raises(ValidationError) as err:
        admit(doc)
    assert any(e.path.endswith(field) and rule in e.message for e in err.value.errors), err.value.errors


def test_a_trainjob_without_a_runtime_is_refused():
    doc = yaml.safe_load((DATA / "trainjob-pytorch.yaml").read_text())
    del doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["runtimeRef"]
    with pytest.raises(ValidationError, match=r"runtimeRef\.name: is required"):
        admit(doc)


def test_the_trainer_overrides_the_runtimes_node_container():
    runtimes = Runtimes()
    custom = copy.deepcopy(TORCH_DISTRIBUTED)
    custom["metadata"]["name"] = "two-nodes"
    custom["spec"]["mlPolicy"]["numNodes"] = 2
    container = custom["spec"]["template"]["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]["spec"]["containers"][0]
    container["env"] = [{"name": "A", "value": "runtime"}, {"name": "B", "value": "runtime"}]
    runtimes.add(custom)
    resolved = resolve(trainjob({"command": ["python3", "t.py"], "env": [{"name": "B", "value": "job"}],
                                 "resourcesPerNode": {"limits": {"cpu": "2"}}}, "two-nodes"), "default", runtimes)
    assert resolved.num_nodes == 2 and resolved.torch and resolved.proc_per_node == "2"  # auto: one per CPU asked for
    assert resolved.container["command"] == ["python3", "t.py"]
    assert resolved.container["env"] == [{"name": "A", "value": "runtime"}, {"name": "B", "value": "job"}]
    assert resolved.container["resources"] == {"limits": {"cpu": "2"}}
    assert resolve(trainjob({"numNodes": 3}, "two-nodes"), "default", runtimes).num_nodes == 3
    assert resolve(trainjob({}, "two-nodes"), "default", runtimes).proc_per_node == "1"
    gpus = resolve(trainjob({"resourcesPerNode": {"limits": {"nvidia.com/gpu": "2"}}}, "two-nodes"), "default", runtimes)
    assert gpus.proc_per_node == "auto"  # torchrun counts the GPUs


def test_runtimes_load_from_yaml_and_a_bad_one_is_named(tmp_path):
    custom = copy.deepcopy(TORCH_DISTRIBUTED)
    custom.update(kind="TrainingRuntime", metadata={"name": "mine", "namespace": "team",
                                                    "labels": {"trainer.kubeflow.org/framework": "torch"}})
    (tmp_path / "runtimes.yaml").write_text(yaml.safe_dump_all([custom, {"kind": "ConfigMap"}]))
    runtimes = Runtimes(builtin=False)
    assert runtimes.load(tmp_path / "runtimes.yaml") == 1
    assert runtimes.get("TrainingRuntime", "mine", "team") is not None
    assert runtimes.get("TrainingRuntime", "mine", "default") is None
    broken = copy.deepcopy(TORCH_DISTRIBUTED)
    del broken["metadata"]["labels"]
    with pytest.raises(ValidationError, match="trainer.kubeflow.org/framework"):
        runtimes.add(broken)


def test_an_unknown_runtime_fails_the_launch_saying_how_to_add_it(tmp_path):
    job = TrialJob(name="t", experiment="e", namespace="default", run_spec=trainjob({"command": ["true"]}, "nope"),
                   primary_container="node", workdir=tmp_path, trial_dir=tmp_path)
    with pytest.raises(LaunchError, match=r"'nope' is not known here .*KATIB_RUNTIMES"):
        replica_processes(job)


def test_an_experiment_of_trainjobs_on_an_unknown_runtime_is_refused_before_it_runs():
    """Admitted, every trial then failed at launch (and an OptimizationJob of them said
    Complete); a cluster resolves its own runtimes, so the Kubernetes executor is not asked."""
    from katib.controller import runnable_errors

    doc = experiment(name="tj")
    doc["spec"]["trialTemplate"]["trialSpec"] = trainjob({"command": ["echo", "${trialParameters.x}"]}, "nope")
    exp = admit(doc)
    errors = [str(e) for e in runnable_errors(exp, "local")]
    assert any(e.startswith("spec.trialTemplate.trialSpec.spec.runtimeRef.name: the ClusterTrainingRuntime 'nope' "
                            "is not known here") for e in errors), errors
    assert runnable_errors(exp, "kubernetes") == []
    known = admit({**doc, "spec": {**doc["spec"], "trialTemplate": {
        **doc["spec"]["trialTemplate"], "trialSpec": trainjob({"command": ["echo", "${trialParameters.x}"]})}}})
    assert runnable_errors(known, "local") == []


def test_nodes_get_torchruns_environment(tmp_path):
    job = TrialJob(name="t", experiment="e", namespace="default",
                   run_spec=trainjob({"numNodes": 3, "command": ["python3", "t.py"]}),
                   primary_container="node", workdir=tmp_path, trial_dir=tmp_path)
    members = replica_processes(job)
    assert [m.replica for m in members] == ["node-0", "node-1", "node-2"]
    assert [m.log_name for m in members] == ["trial.log", "node-1.log", "node-2.log"]
    assert [(m.env["RANK"], m.env["PET_NODE_RANK"], m.env["JOB_COMPLETION_INDEX"]) for m in members] == [
        ("0", "0", "0"), ("1", "1", "1"), ("2", "2", "2")]
    assert {(m.env["WORLD_SIZE"], m.env["PET_NNODES"], m.env["MASTER_PORT"] == m.env["PET_MASTER_PORT"]) for m in members} == {("3", "3", True)}
    assert "workingDir" not in members[0].container  # the experiment's folder, like any local trial
    assert members[0].env["PATH"].startswith(str(tmp_path / ".katib-bin"))  # one process a node: the stand-in torchrun


# The command the Kubeflow SDK's CustomTrainer makes of a function (kubeflow 0.5.0's
# EXEC_FUNC_SCRIPT with torchrun, the torch-distributed runtime's entry point).
SDK_SCRIPT = """
read -r -d '' SCRIPT << EOM

def train(lr):
    import os
    rank, world = os.environ["RANK"], os.environ["WORLD_SIZE"]
    print(f"node {rank} of {world} in {os.path.basename(os.getcwd())}")
    if rank == "0":
        print(f"loss={float(lr) * 2}")

train(**{'lr': '${trialParameters.lr}'})

EOM
printf "%s" "$SCRIPT" > "train.py"
torchrun "train.py\""""


def test_a_trainjob_experiment_runs_its_nodes_locally(sqlite_store, tmp_path):
    doc = experiment(maxTrialCount=2, parallelTrialCount=2, maxFailedTrialCount=1,
                     objective={"type": "minimize", "objectiveMetricName": "loss"},
                     parameters=[{"name": "lr", "parameterType": "double", "feasibleSpace": {"min": "0.1", "max": "0.2"}}])
    doc["spec"]["trialTemplate"] = {
        "primaryContainerName": "node", "trialParameters": [{"name": "lr", "reference": "lr"}],
        "trialSpec": trainjob({"numNodes": 2, "command": ["bash", "-c", SDK_SCRIPT]}),
    }
    ctl = Controller(sqlite_store, runs_root=tmp_path / "runs", tick=0.05)
    rec, _ = ctl.submit(admit(doc), tmp_path)
    ctl.run(rec.namespace, rec.name)
    trials = sqlite_store.list_trials(rec.id)
    assert [t.state for t in trials] == ["Succeeded", "Succeeded"], [t.conditions for t in trials]
    for t in trials:
        folder = tmp_path / "runs" / "default" / "demo" / t.name
        assert "node 0 of 2 in node-0" in (folder / "trial.log").read_text()
        assert "node 1 of 2 in node-1" in (folder / "node-1.log").read_text()
        assert t.objective == pytest.approx(float(t.parameters()["lr"]) * 2)
    assert registry().get("ClusterTrainingRuntime", "torch-distributed") is not None
