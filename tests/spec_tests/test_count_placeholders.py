"""A count the server loops over (a training job's replicas, a TrainJob's ``numNodes``, a
Job's ``parallelism``) may come from a ``${trialParameters.…}`` placeholder only when every
value of the parameter it references is an integer within ``KATIB_MAX_REPLICAS``.

The security review: ``numNodes: "${trialParameters.n}"`` with ``n`` fixed at 2,000,000 was
admitted (the check skipped placeholders); a viewer's ``…/pods?limit=1`` then built two
million pods (1 min 40 s, 3.5 GB) and the controller 200,001 members of a PyTorchJob."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from katib.errors import ValidationError
from katib.spec import Limits, admit
from tests.conftest import experiment

TRIAL_SPEC = "spec.trialTemplate.trialSpec"
RULE = "every value must be an integer from {least} to 64 (the server's limit; raise it with KATIB_MAX_REPLICAS)"
CONTAINER = {"name": "main", "image": "x", "command": ["python3", "-c", "print('loss=${trialParameters.x}')"]}


@pytest.fixture(autouse=True)
def _default_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KATIB_MAX_REPLICAS", raising=False)


def with_n(job: dict[str, Any], n: dict[str, Any] | None = None, reference: str = "n") -> dict[str, Any]:
    """The base experiment whose trials are ``job``, with a parameter ``n`` (an int from 1
    to 4 unless given) and a trial parameter ``n`` referencing ``reference``."""
    doc = experiment()
    if n is not None or reference == "n":
        doc["spec"]["parameters"].append({"name": "n", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "4"},
                                          **(n or {})})
    doc["spec"]["trialTemplate"]["trialParameters"].append({"name": "n", "reference": reference})
    doc["spec"]["trialTemplate"]["trialSpec"] = job
    return doc


def trainjob(num_nodes: Any) -> dict[str, Any]:
    return {"apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJob",
            "spec": {"runtimeRef": {"name": "torch-distributed"},
                     "trainer": {"numNodes": num_nodes, "command": CONTAINER["command"]}}}


def pytorchjob(workers: Any) -> dict[str, Any]:
    replica = {"replicas": 1, "template": {"spec": {"containers": [copy.deepcopy(CONTAINER)]}}}
    return {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob",
            "spec": {"pytorchReplicaSpecs": {"Master": replica, "Worker": {**copy.deepcopy(replica), "replicas": workers}}}}


def batch_job(**counts: Any) -> dict[str, Any]:
    return {"apiVersion": "batch/v1", "kind": "Job",
            "spec": {**counts, "template": {"spec": {"restartPolicy": "Never", "containers": [copy.deepcopy(CONTAINER)]}}}}


N = "${trialParameters.n}"
NUM_NODES = f"{TRIAL_SPEC}.spec.trainer.numNodes"
WORKERS = f"{TRIAL_SPEC}.spec.pytorchReplicaSpecs.Worker.replicas"
FIXED = {"feasibleSpace": {"min": "2000000", "max": "2000000"}}

REFUSED = [
    # the reviewer's two documents
    ("numNodes 2,000,000", lambda: with_n(trainjob(N), FIXED), NUM_NODES,
     f"${{trialParameters.n}} takes parameter n's values, from 2000000 to 2000000: {RULE.format(least=1)}"),
    ("workers 2,000,000", lambda: with_n(pytorchjob(N), FIXED), WORKERS,
     f"${{trialParameters.n}} takes parameter n's values, from 2000000 to 2000000: {RULE.format(least=0)}"),
    ("workers up to 65", lambda: with_n(pytorchjob(N), {"feasibleSpace": {"min": "1", "max": "65"}}), WORKERS,
     "from 1 to 65: every value must be an integer from 0 to 64"),
    ("numNodes from 0", lambda: with_n(trainjob(N), {"feasibleSpace": {"min": "0", "max": "4"}}), NUM_NODES,
     "from 0 to 4: every value must be an integer from 1 to 64"),
    ("discrete past the limit", lambda: with_n(trainjob(N), {"parameterType": "discrete", "feasibleSpace": {"list": ["2", "100"]}}),
     NUM_NODES, "from 2 to 100"),
    ("categorical not integers", lambda: with_n(trainjob(N), {"parameterType": "categorical", "feasibleSpace": {"list": ["1", "many"]}}),
     NUM_NODES, f"takes parameter n's values, not all integers: {RULE.format(least=1)}"),
    ("double", lambda: with_n(pytorchjob(N), {"parameterType": "double", "feasibleSpace": {"min": "1", "max": "2"}}),
     WORKERS, "not all integers"),
    ("a metadata key", lambda: with_n(pytorchjob(N), reference="${trialSpec.Name}"), WORKERS,
     "must reference an int, discrete or categorical parameter, not a metadata key or a NAS value"),
    ("text around the placeholder", lambda: with_n(trainjob("1" + N)), NUM_NODES,
     "may hold a ${trialParameters.…} placeholder only as its whole value (got '1${trialParameters.n}')"),
    ("a Job's parallelism", lambda: with_n(batch_job(parallelism=N), FIXED), f"{TRIAL_SPEC}.spec.parallelism", "from 2000000"),
    ("a Job's completions", lambda: with_n(batch_job(completions=N), FIXED), f"{TRIAL_SPEC}.spec.completions", "from 2000000"),
]

ADMITTED = [
    ("numNodes 1 to 4", lambda: with_n(trainjob(N))),
    ("workers 0 to 64", lambda: with_n(pytorchjob(N), {"feasibleSpace": {"min": "0", "max": "64", "step": "8"}})),
    ("discrete node counts", lambda: with_n(trainjob(N), {"parameterType": "discrete", "feasibleSpace": {"list": ["1", "2", "64"]}})),
    ("categorical worker counts", lambda: with_n(pytorchjob(N), {"parameterType": "categorical", "feasibleSpace": {"list": ["0", "3"]}})),
    ("a Job's parallelism", lambda: with_n(batch_job(parallelism=N, completions=N))),
]


@pytest.mark.parametrize(("doc", "path", "phrase"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_a_count_from_a_placeholder_is_refused_unless_every_value_is_within_the_limit(doc, path, phrase):
    with pytest.raises(ValidationError) as info:
        admit(doc())
    errors = [str(e) for e in info.value.errors]
    assert any(e.startswith(f"{path}: ") and phrase in e for e in errors), errors


@pytest.mark.parametrize("doc", [c[1] for c in ADMITTED], ids=[c[0] for c in ADMITTED])
def test_a_count_from_a_bounded_integer_parameter_is_admitted(doc):
    admit(doc())


def test_an_operator_raises_the_limit_for_placeholders_too(monkeypatch):
    doc = with_n(trainjob(N), {"feasibleSpace": {"min": "1", "max": "100"}})
    monkeypatch.setenv("KATIB_MAX_REPLICAS", "100")
    admit(doc)


@pytest.mark.parametrize(("job", "path", "phrase"), [
    (trainjob("2000000"), "trialSpec.spec.trainer.numNodes", "must be at most 64 (the server's limit"),
    (trainjob("0"), "trialSpec.spec.trainer.numNodes", "must be a positive integer (got '0')"),
    (pytorchjob("65"), "trialSpec.spec.pytorchReplicaSpecs.Worker.replicas", "must be at most 64"),
    (pytorchjob("many"), "trialSpec.spec.pytorchReplicaSpecs.Worker.replicas", "must be a non-negative integer (got 'many')"),
    (batch_job(parallelism="1000"), "trialSpec.spec.parallelism", "must be at most 64"),
])
def test_a_rendered_jobs_counts_are_checked_again(job, path, phrase):
    """What a trial's launch checks: the rendered counts (placeholders are strings)."""
    from katib.spec import count_errors

    errors = [str(e) for e in count_errors(job, Limits())]
    assert any(e.startswith(f"{path}: ") and phrase in e for e in errors), errors
    assert count_errors(trainjob("64"), Limits()) == [] and count_errors(pytorchjob("0"), Limits()) == []


# -- JobSet and Ray: their counts are counts too ---------------------------------------------
# The review: a JobSet (a kind a tenant may submit) was admitted with replicatedJobs[].replicas
# from a placeholder up to 2,000,000 and a replicated Job's parallelism of 1,000,000, and
# its launch check found nothing; a Ray cluster's worker groups (the Kubernetes executor
# creates any kind of an API group) were not counted either.

CONDITIONS = {"successCondition": 'status.conditions.#(type=="Completed")#|#(status=="True")#',
              "failureCondition": 'status.conditions.#(type=="Failed")#|#(status=="True")#'}


def with_conditions(doc: dict[str, Any]) -> dict[str, Any]:
    """A kind without Katib's default conditions: they are given."""
    doc["spec"]["trialTemplate"].update(CONDITIONS)
    return doc


def jobset(replicas: Any = 1, **job_counts: Any) -> dict[str, Any]:
    pod = {"restartPolicy": "Never", "containers": [copy.deepcopy(CONTAINER)]}
    return {"apiVersion": "jobset.x-k8s.io/v1alpha2", "kind": "JobSet", "spec": {"replicatedJobs": [
        {"name": "leader", "replicas": 1, "template": {"spec": {"template": {"spec": copy.deepcopy(pod)}}}},
        {"name": "workers", "replicas": replicas, "template": {"spec": {**job_counts, "template": {"spec": pod}}}}]}}


def ray_group(**counts: Any) -> dict[str, Any]:
    return {"groupName": "workers", **counts, "template": {"spec": {"containers": [{"name": "worker", "image": "ray"}]}}}


def raycluster(**counts: Any) -> dict[str, Any]:
    return {"headGroupSpec": {"template": {"spec": {"containers": [copy.deepcopy(CONTAINER)]}}},
            "workerGroupSpecs": [ray_group(replicas=1), ray_group(**counts)]}


def rayjob(**counts: Any) -> dict[str, Any]:
    return {"apiVersion": "ray.io/v1", "kind": "RayJob", "spec": {"entrypoint": "python -c 'pass'",
                                                                  "rayClusterSpec": raycluster(**counts)}}


def ray_cluster_kind(**counts: Any) -> dict[str, Any]:
    return {"apiVersion": "ray.io/v1", "kind": "RayCluster", "spec": raycluster(**counts)}


JOBSET_WORKERS = f"{TRIAL_SPEC}.spec.replicatedJobs[1]"
RAY_WORKERS = f"{TRIAL_SPEC}.spec.rayClusterSpec.workerGroupSpecs[1]"

REFUSED_KINDS = [
    ("the reviewer's JobSet: replicas", lambda: with_conditions(with_n(jobset(N), {"feasibleSpace": {"min": "1", "max": "2000000"}})),
     f"{JOBSET_WORKERS}.replicas", f"from 1 to 2000000: {RULE.format(least=0)}"),
    ("the reviewer's JobSet: parallelism", lambda: with_conditions(with_n(jobset(1, parallelism=1000000, completions=N))),
     f"{JOBSET_WORKERS}.template.spec.parallelism", "must be at most 64 (the server's limit"),
    ("a JobSet's completions", lambda: with_conditions(with_n(jobset(1, completions=N), FIXED)),
     f"{JOBSET_WORKERS}.template.spec.completions", "from 2000000 to 2000000"),
    ("a JobSet's replicas, literal", lambda: with_conditions(with_n(jobset(65, parallelism=N))),
     f"{JOBSET_WORKERS}.replicas", "must be at most 64"),
    ("a RayJob's worker replicas", lambda: with_conditions(with_n(rayjob(replicas=N), FIXED)),
     f"{RAY_WORKERS}.replicas", f"from 2000000 to 2000000: {RULE.format(least=0)}"),
    ("a RayJob's maxReplicas, literal", lambda: with_conditions(with_n(rayjob(replicas=N, maxReplicas=100000))),
     f"{RAY_WORKERS}.maxReplicas", "must be at most 64"),
    ("a RayJob's minReplicas", lambda: with_conditions(with_n(rayjob(minReplicas=N), {"feasibleSpace": {"min": "-1", "max": "4"}})),
     f"{RAY_WORKERS}.minReplicas", f"from -1 to 4: {RULE.format(least=0)}"),
    ("a RayJob's hosts per replica", lambda: with_conditions(with_n(rayjob(replicas=N, numOfHosts=1000))),
     f"{RAY_WORKERS}.numOfHosts", "must be at most 64"),
    ("a RayCluster's worker replicas", lambda: with_conditions(with_n(ray_cluster_kind(replicas=N), FIXED)),
     f"{TRIAL_SPEC}.spec.workerGroupSpecs[1].replicas", "from 2000000 to 2000000"),
]

ADMITTED_KINDS = [
    ("a JobSet of bounded counts", lambda: with_conditions(with_n(jobset(N, parallelism=N, completions=64)))),
    ("a RayJob of bounded counts", lambda: with_conditions(with_n(rayjob(replicas=N, minReplicas=0, maxReplicas=64, numOfHosts=2)))),
    ("a RayCluster of bounded counts", lambda: with_conditions(with_n(ray_cluster_kind(replicas=N, maxReplicas=N)))),
]


@pytest.mark.parametrize(("doc", "path", "phrase"), [c[1:] for c in REFUSED_KINDS], ids=[c[0] for c in REFUSED_KINDS])
def test_a_jobsets_and_a_ray_clusters_counts_are_bounded(doc, path, phrase):
    with pytest.raises(ValidationError) as info:
        admit(doc())
    errors = [str(e) for e in info.value.errors]
    assert any(e.startswith(f"{path}: ") and phrase in e for e in errors), errors


@pytest.mark.parametrize("doc", [c[1] for c in ADMITTED_KINDS], ids=[c[0] for c in ADMITTED_KINDS])
def test_a_jobset_and_a_ray_cluster_of_bounded_counts_are_admitted(doc):
    admit(doc())


@pytest.mark.parametrize(("job", "path"), [
    ({"kind": "JobSet", "spec": {"replicatedJobs": [{"replicas": "2000000"}]}}, "trialSpec.spec.replicatedJobs[0].replicas"),
    (jobset(1, parallelism="65"), "trialSpec.spec.replicatedJobs[1].template.spec.parallelism"),
    (rayjob(replicas="65"), "trialSpec.spec.rayClusterSpec.workerGroupSpecs[1].replicas"),
    (ray_cluster_kind(maxReplicas=2**31 - 1), "trialSpec.spec.workerGroupSpecs[1].maxReplicas"),
])
def test_a_rendered_jobsets_and_ray_clusters_counts_are_checked_again(job, path):
    from katib.spec import count_errors

    assert [str(e) for e in count_errors(job, Limits())] == [f"{path}: must be at most 64 (the server's limit; "
                                                             "raise it with KATIB_MAX_REPLICAS)"]
    assert count_errors(jobset(64, parallelism="64"), Limits()) == [] == count_errors(rayjob(replicas="64"), Limits())


# -- a placeholder in a key on the way to a count --------------------------------------------
# The review: render substitutes keys too, so {"${trialParameters.f}": "${trialParameters.n}"}
# in a replica spec, f taking "replicas" and n up to 200,000, was admitted (the count's
# check looks for "replicas"); only the launch check caught it.

KEY_RULE = "a key here must not hold a ${trialParameters.…} placeholder: it is on the way to a count"
F = "${trialParameters.f}"


def with_f(doc: dict[str, Any], *values: str) -> dict[str, Any]:
    """``doc`` with a categorical parameter ``f`` taking ``values``, trial parameter ``f``."""
    doc["spec"]["parameters"].append({"name": "f", "parameterType": "categorical", "feasibleSpace": {"list": list(values)}})
    doc["spec"]["trialTemplate"]["trialParameters"].append({"name": "f", "reference": "f"})
    return doc


def keyed(job: dict[str, Any], *where: Any, value: Any = N) -> dict[str, Any]:
    """``job`` with the key ``${trialParameters.f}`` holding ``value`` at ``where``."""
    owner = job
    for step in where:
        owner = owner[step]
    owner[F] = value
    return job


BIG = {"feasibleSpace": {"min": "1", "max": "200000"}}
REFUSED_KEYS = [
    ("the reviewer's replica spec", lambda: with_f(with_n(keyed(pytorchjob(1), "spec", "pytorchReplicaSpecs", "Worker"), BIG), "replicas"),
     f"{WORKERS[:-len('.replicas')]}.{F}"),
    ("a training job's spec", lambda: with_f(with_n(keyed(pytorchjob(N), "spec", value={"Worker": {"replicas": 100000}})),
                                             "pytorchReplicaSpecs"), f"{TRIAL_SPEC}.spec.{F}"),
    ("a Job's spec", lambda: with_f(with_n(keyed(batch_job(), "spec"), BIG), "parallelism"), f"{TRIAL_SPEC}.spec.{F}"),
    ("the job itself", lambda: with_f(with_n(keyed(batch_job(completions=N), value={"parallelism": 100000})), "spec"),
     f"{TRIAL_SPEC}.{F}"),
    ("the job, with no spec but the key's", lambda: with_f(with_n(keyed(
        {k: v for k, v in pytorchjob(N).items() if k != "spec"}, value=pytorchjob(N)["spec"]), BIG), "spec"),
     f"{TRIAL_SPEC}.{F}"),
    ("a TrainJob's trainer", lambda: with_f(with_n(keyed(trainjob(1), "spec", "trainer"), BIG), "numNodes"),
     f"{TRIAL_SPEC}.spec.trainer.{F}"),
    ("a replicated job", lambda: with_conditions(with_f(with_n(keyed(jobset(), "spec", "replicatedJobs", 1), BIG), "replicas")),
     f"{JOBSET_WORKERS}.{F}"),
    ("a replicated job's template", lambda: with_conditions(with_f(with_n(
        keyed(jobset(N), "spec", "replicatedJobs", 1, "template", value={"parallelism": 100000})), "spec")),
     f"{JOBSET_WORKERS}.template.{F}"),
    ("a replicated Job's spec", lambda: with_conditions(with_f(with_n(
        keyed(jobset(), "spec", "replicatedJobs", 1, "template", "spec"), BIG), "completions")),
     f"{JOBSET_WORKERS}.template.spec.{F}"),
    ("a RayJob's cluster", lambda: with_conditions(with_f(with_n(
        keyed(rayjob(replicas=N), "spec", "rayClusterSpec", value=[ray_group(replicas=100000)])), "workerGroupSpecs")),
     f"{TRIAL_SPEC}.spec.rayClusterSpec.{F}"),
    ("a Ray worker group", lambda: with_conditions(with_f(with_n(
        keyed(rayjob(), "spec", "rayClusterSpec", "workerGroupSpecs", 1), BIG), "maxReplicas")), f"{RAY_WORKERS}.{F}"),
]


@pytest.mark.parametrize(("doc", "path"), [c[1:] for c in REFUSED_KEYS], ids=[c[0] for c in REFUSED_KEYS])
def test_a_placeholder_in_a_key_on_the_way_to_a_count_is_refused(doc, path):
    with pytest.raises(ValidationError) as info:
        admit(doc())
    errors = [str(e) for e in info.value.errors]
    assert any(e.startswith(f"{path}: ") and KEY_RULE in e for e in errors), errors


def test_a_placeholder_in_a_key_elsewhere_is_admitted():
    """Only the keys on the way to a count: a pod template's annotations may be named by one."""
    job = batch_job(parallelism=N)
    job["spec"]["template"]["metadata"] = {"annotations": {f"example.com/{F}": "1"}}
    admit(with_f(with_n(job), "note"))


def test_a_kind_that_a_placeholder_decides_has_every_kinds_counts():
    """``kind: ${trialParameters.k}`` taking ``Job`` from the job's own label: the counts of
    every kind are checked, a Job's parallelism among them."""
    doc = with_n(batch_job(parallelism=100000, completions=N))
    job = doc["spec"]["trialTemplate"]["trialSpec"]
    job.update(kind="${trialParameters.k}", metadata={"labels": {"kind": "Job"}})
    doc["spec"]["trialTemplate"]["trialParameters"].append({"name": "k", "reference": "${trialSpec.Labels[kind]}"})
    doc["spec"]["trialTemplate"].update(CONDITIONS)
    with pytest.raises(ValidationError) as info:
        admit(doc)
    errors = [str(e) for e in info.value.errors]
    assert any(e.startswith(f"{TRIAL_SPEC}.spec.parallelism: must be at most 64") for e in errors), errors
