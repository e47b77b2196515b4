"""Kubeflow Trainer's OptimizationJob as a superset (issue 13): upstream's field rules kept,
the limits lifted on purpose lifted, and the Katib Experiment it is written as."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

from katib.controller import admit
from katib.errors import ValidationError
from katib.spec import Limits, validate

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "trainer" / "optimizationjob-sample.yaml"


def sample() -> dict:
    return yaml.safe_load(SAMPLE.read_text())


def errors_of(doc: dict) -> list[str]:
    try:
        admit(doc)
    except ValidationError as exc:
        return [str(e) for e in exc.errors]
    return []


def test_upstreams_sample_is_written_as_a_katib_experiment_of_trainjobs():
    exp = admit(sample())
    assert exp.name == "random-tuning-mvp" and exp.kind == "Experiment"
    assert exp.spec.objective is not None and exp.spec.objective.type == "minimize"
    assert exp.spec.objective.objective_metric_name == "val_loss"
    assert exp.spec.algorithm is not None and exp.spec.algorithm.algorithm_name == "random"
    assert (exp.spec.max_trial_count, exp.spec.parallel_trial_count) == (20, 4)
    [lr, batch] = exp.spec.parameters or []
    assert (lr.parameter_type, lr.feasible_space.min, lr.feasible_space.distribution) == ("double", "0.0001", "logUniform")
    assert (batch.parameter_type, batch.feasible_space.list_) == ("categorical", ["16", "32", "64"])
    tt = exp.spec.trial_template
    assert tt is not None and tt.trial_spec is not None and tt.trial_spec["kind"] == "TrainJob"
    assert tt.trial_spec["spec"]["trainer"]["env"] == [
        {"name": "KUBEFLOW_TRAINER_OPT_LEARNING_RATE", "value": "${trialParameters.learning_rate}"},
        {"name": "KUBEFLOW_TRAINER_OPT_BATCH_SIZE", "value": "${trialParameters.batch_size}"}]
    annotation = tt.trial_spec["metadata"]["annotations"]["trainer.kubeflow.org/optimization-parameters"]
    assert json.loads(annotation) == {"learning_rate": "${trialParameters.learning_rate}", "batch_size": "${trialParameters.batch_size}"}
    assert tt.success_condition and tt.primary_pod_labels  # Katib 0.19's TrainJob defaults


@pytest.mark.parametrize(("change", "expected"), [
    (lambda s: s.update(objectives=[]), "spec.objectives: must list 1 to 8"),
    (lambda s: s["objectives"][0].update(direction="sideways"), "spec.objectives[0].direction: must be Maximize or Minimize"),
    (lambda s: s["objectives"].append({"metric": "val_loss"}), "duplicate metric"),
    (lambda s: s.update(searchAlgorithm={"random": {}, "grid": {}}), "spec.searchAlgorithm: must set exactly one"),
    (lambda s: s.update(searchAlgorithm={"grid": {}}), "Grid search requires all parameters to be Categorical"),
    (lambda s: s.update(searchAlgorithm={"random": {"seed": "7"}}), "seed: must be an integer"),
    (lambda s: s["parameters"][0]["searchSpace"]["logUniform"].update(min="0"), "must be strictly greater than 0"),
    (lambda s: s["parameters"][0]["searchSpace"]["logUniform"].update(min="0.5"), "min must be strictly less than max"),
    (lambda s: s["parameters"][0]["searchSpace"]["logUniform"].update(max="1e"), "max: must be a decimal number"),
    (lambda s: s["parameters"][0]["searchSpace"]["logUniform"].update(type="Double"), "type: must be Float or Int"),
    (lambda s: s["parameters"][0].update(searchSpace={"uniform": {"min": "0", "max": "1"}, "categorical": {"choices": ["a"]}}),
     "must set exactly one of uniform, logUniform and categorical"),
    (lambda s: s["parameters"][1]["searchSpace"]["categorical"].update(choices=[str(i) for i in range(101)]), "must list 1 to 100 choices"),
    (lambda s: s["parameters"][1]["searchSpace"]["categorical"].update(choices=["a", "a"]), "must not repeat a choice"),
    (lambda s: s["parameters"].append({"name": "Batch-Size", "searchSpace": {"categorical": {"choices": ["1"]}}}),
     "makes the same variable KUBEFLOW_TRAINER_OPT_BATCH_SIZE"),
    (lambda s: s.update(parameters=[dict(s["parameters"][1], name=f"p{i}") for i in range(101)]), "must list 1 to 100 parameters"),
    (lambda s: s.update(numTrials=0), "spec.numTrials: must be an integer of at least 1"),
    (lambda s: s.update(parallelTrials=30), "parallelTrials cannot exceed numTrials (30 > 20)"),
    (lambda s: s["trainJobTemplate"].update(metadata={"name": "x"}), "name and namespace cannot be set in a template."),
    (lambda s: s.update(maxTrialCount=3), "spec.maxTrialCount: unknown field of an OptimizationJob"),
])
def test_upstreams_field_rules_are_kept(change, expected):
    doc = sample()
    change(doc["spec"])
    found = errors_of(doc)
    assert any(expected in e for e in found), found


def beyond() -> dict:
    doc = sample()
    spec = doc["spec"]
    spec.update(numTrials=100_000, parallelTrials=1_000)
    spec["objectives"] = [{"metric": f"m{i}", "direction": "Maximize" if i % 2 else "Minimize"} for i in range(8)]
    spec["searchAlgorithm"] = {"katib": {"algorithmName": "multivariate-tpe"}}
    spec["earlyStopping"] = {"algorithmName": "medianstop"}
    return doc


def test_the_lifted_limits_are_lifted():
    exp = admit(beyond())
    assert (exp.spec.max_trial_count, exp.spec.parallel_trial_count) == (100_000, 1_000)
    assert exp.spec.objective is not None and len(exp.spec.objective.additional_objectives or []) == 7
    assert exp.spec.algorithm is not None and exp.spec.algorithm.algorithm_name == "multivariate-tpe"
    assert exp.spec.early_stopping is not None and exp.spec.early_stopping.algorithm_name == "medianstop"
    hyperband = sample()
    hyperband["spec"]["parameters"].append({"name": "epochs", "searchSpace": {"uniform": {"min": "1", "max": "9", "type": "Int"}}})
    hyperband["spec"]["searchAlgorithm"] = {"katib": {"algorithmName": "hyperband", "algorithmSettings": [
        {"name": "resource_name", "value": "epochs"}, {"name": "eta", "value": "3"}, {"name": "r_l", "value": "9"}]}}
    assert errors_of(hyperband) == ["spec.parallelTrials: must be >= 9 for hyperband with r_l=9 and eta=3 (got 4) "
                                    "(as the Katib Experiment's spec.parallelTrialCount)"]  # at the field the user wrote
    hyperband["spec"]["parallelTrials"] = 9
    assert errors_of(hyperband) == []


def test_what_stays_limited():
    doc = beyond()
    doc["spec"]["objectives"].append({"metric": "m8"})
    assert any("must list 1 to 8 objectives" in e for e in errors_of(doc))
    doc = beyond()
    doc["spec"]["parallelTrials"] = 1_001  # the server's limit (KATIB_MAX_PARALLEL_TRIALS), not upstream's 100
    exp = copy.deepcopy(doc)
    assert any(e.startswith("spec.parallelTrials:") and "1000" in e for e in errors_of(exp)), errors_of(exp)
    assert validate(admit(beyond()), limits=Limits(parallel_trials=10)) != []


def test_validate_and_run_read_optimization_jobs(tmp_path):
    from katib.spec import experiment_documents

    text = SAMPLE.read_text() + "\n---\n" + yaml.safe_dump({"apiVersion": "v1", "kind": "ConfigMap"})
    [doc] = experiment_documents(text)
    assert doc["kind"] == "OptimizationJob"


def test_the_source_annotation_is_reserved_to_the_conversion():
    """Security review 5: a plain Experiment planted the annotation an OptimizationJob's
    Experiment keeps its source in, and was shown as an OptimizationJob of 999 trials
    maximizing acc while it ran one trial minimizing loss. Only the conversion writes it."""
    from katib.spec import OPTIMIZATION_JOB_SOURCE
    from tests.conftest import experiment

    path = f"metadata.annotations[{OPTIMIZATION_JOB_SOURCE}]"
    converted = admit(sample())
    source = (converted.metadata.annotations or {})[OPTIMIZATION_JOB_SOURCE]
    assert json.loads(source)["spec"] == sample()["spec"]

    planted = experiment(name="plain")
    planted["metadata"]["annotations"] = {OPTIMIZATION_JOB_SOURCE: json.dumps(
        {"apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "OptimizationJob",
         "spec": {"numTrials": 999, "objectives": [{"metric": "acc", "direction": "maximize"}]}})}
    [error] = [e for e in errors_of(planted) if e.startswith(path)]
    assert "is reserved" in error and "OptimizationJob" in error
    for value in ("", source):  # empty, or copied from a real one: reserved all the same
        planted["metadata"]["annotations"][OPTIMIZATION_JOB_SOURCE] = value
        assert any(e.startswith(path + ": is reserved") for e in errors_of(planted))

    # An OptimizationJob that writes it itself gets ours, not its own.
    own = sample()
    own["metadata"]["annotations"] = {OPTIMIZATION_JOB_SOURCE: '{"spec": {"numTrials": 999}}'}
    kept = json.loads((admit(own).metadata.annotations or {})[OPTIMIZATION_JOB_SOURCE])
    assert kept["spec"]["numTrials"] == 20

    # An edit of the stored experiment keeps it as it is, and may not change or drop it.
    stored = converted.to_dict()
    stored["spec"]["maxTrialCount"] = 30
    assert admit(stored, kept_source=source).spec.max_trial_count == 30
    with pytest.raises(ValidationError, match="is reserved"):
        admit(copy.deepcopy(stored))  # not an edit of one that carries it
    for changed in ('{"spec": {"numTrials": 999}}', None):
        edit = copy.deepcopy(stored)
        if changed is None:
            del edit["metadata"]["annotations"][OPTIMIZATION_JOB_SOURCE]
        else:
            edit["metadata"]["annotations"][OPTIMIZATION_JOB_SOURCE] = changed
        with pytest.raises(ValidationError, match=r"optimization-job\]: cannot be changed or removed"):
            admit(edit, kept_source=source)


def test_one_reading_of_the_source_annotation_for_admission_the_view_and_the_store():
    """``optimization_job_source_text`` and ``optimization_job_of`` are the one parser of
    the annotation: a string, and a JSON object in it, or None; JSON nested past what the
    parser follows is None, not a RecursionError in a list or a view."""
    from katib.spec import (
        OPTIMIZATION_JOB_SOURCE,
        optimization_job_of,
        optimization_job_source_text,
    )

    def doc(value: object) -> dict:
        return {"metadata": {"annotations": {OPTIMIZATION_JOB_SOURCE: value}}}

    assert optimization_job_of(doc('{"kind": "OptimizationJob"}')) == {"kind": "OptimizationJob"}
    for value in ("", "[1]", "not json", 7, None, "[" * 100_000 + "]" * 100_000):
        assert optimization_job_of(doc(value)) is None
    assert optimization_job_source_text(doc(7)) is None and optimization_job_source_text(doc("x")) == "x"
    assert optimization_job_of({"metadata": []}) is None and optimization_job_of([]) is None


@pytest.mark.parametrize(("change", "expected"), [
    # each was a 500 (a TypeError or AttributeError in the conversion) through the API, and a stack trace through the CLI
    (lambda d: d["spec"]["objectives"][0].update(metric=["loss"]), "spec.objectives[0].metric: is required (a string)"),
    (lambda d: d["spec"]["parameters"][0].update(name=["lr"]), "spec.parameters[0].name: is required (a string)"),
    (lambda d: d["spec"].update(searchAlgorithm={"random": [1]}), "spec.searchAlgorithm.random: must be a mapping"),
    (lambda d: d.update(metadata="x"), "metadata: must be a mapping"),
    (lambda d: d["metadata"].update(annotations=[1]), "metadata.annotations: must be a mapping of strings to strings"),
    (lambda d: d["spec"]["trainJobTemplate"].update(metadata=[1]), "spec.trainJobTemplate.metadata: must be a mapping"),
    (lambda d: d["spec"]["trainJobTemplate"].update(metadata={"labels": [1]}),
     "spec.trainJobTemplate.metadata.labels: must be a mapping of strings"),
    (lambda d: d["spec"]["trainJobTemplate"]["spec"].update(trainer="x"), "spec.trainJobTemplate.spec.trainer: must be a mapping"),
    # each was accepted, and the field dropped without a word
    (lambda d: d["spec"]["objectives"][0].update(goal=0.1), "spec.objectives[0].goal: unknown field"),
    (lambda d: d["spec"]["parameters"][0].update(typo=1), "spec.parameters[0].typo: unknown field"),
    (lambda d: d["spec"]["parameters"][0]["searchSpace"]["logUniform"].update(step="0.1"),
     "spec.parameters[0].searchSpace.logUniform.step: unknown field"),
    (lambda d: d["spec"].update(searchAlgorithm={"random": {"sed": 5}}), "spec.searchAlgorithm.random.sed: unknown field"),
    (lambda d: d["spec"]["trainJobTemplate"].update(typo=1), "spec.trainJobTemplate.typo: unknown field"),
    (lambda d: d.update(typo=1), "typo: unknown field"),
    (lambda d: d.update(apiVersion="trainer.kubeflow.org/v9"), "apiVersion: must be trainer.kubeflow.org/v1alpha1"),
])
def test_a_malformed_or_unknown_field_is_refused_by_name(change, expected):
    doc = sample()
    change(doc)
    found = errors_of(doc)
    assert any(expected in e for e in found), found
