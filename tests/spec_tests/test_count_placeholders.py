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
