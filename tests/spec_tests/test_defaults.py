"""Every default of Katib's defaulting webhook (reference §3)."""

from __future__ import annotations

import pytest

from katib.spec import apply_defaults, parse_experiment
from tests.conftest import experiment


def defaulted(doc):
    return apply_defaults(parse_experiment(doc))


def test_parallel_trial_count_defaults_to_three():
    doc = experiment()
    del doc["spec"]["parallelTrialCount"]
    assert defaulted(doc).spec.parallel_trial_count == 3


def test_max_counts_have_no_default():
    doc = experiment()
    del doc["spec"]["maxTrialCount"], doc["spec"]["maxFailedTrialCount"]
    exp = defaulted(doc)
    assert exp.spec.max_trial_count is None and exp.spec.max_failed_trial_count is None


def test_resume_policy_defaults_to_never():
    assert defaulted(experiment()).spec.resume_policy == "Never"


def test_namespace_defaults():
    assert defaulted(experiment()).metadata.namespace == "default"


@pytest.mark.parametrize(("objective_type", "strategy"), [("minimize", "min"), ("maximize", "max")])
def test_metric_strategies_follow_objective_type(objective_type, strategy):
    doc = experiment(objective={"type": objective_type, "objectiveMetricName": "acc",
                                "additionalMetricNames": ["loss"],
                                "metricStrategies": [{"name": "loss", "value": "latest"}]})
    strategies = {s.name: s.value for s in defaulted(doc).spec.objective.metric_strategies}
    assert strategies == {"acc": strategy, "loss": "latest"}


def test_batch_job_gets_katib_job_conditions():
    tt = defaulted(experiment()).spec.trial_template
    assert tt.success_condition == 'status.conditions.#(type=="Complete")#|#(status=="True")#'
    assert tt.failure_condition == 'status.conditions.#(type=="Failed")#|#(status=="True")#'


@pytest.mark.parametrize("kind", ["TFJob", "PyTorchJob", "XGBoostJob", "MPIJob"])
def test_kubeflow_jobs_get_succeeded_condition_and_master_label(kind):
    doc = experiment()
    doc["spec"]["trialTemplate"]["trialSpec"] = {"apiVersion": "kubeflow.org/v1", "kind": kind, "spec": {}}
    tt = defaulted(doc).spec.trial_template
    assert tt.success_condition == 'status.conditions.#(type=="Succeeded")#|#(status=="True")#'
    assert tt.failure_condition == 'status.conditions.#(type=="Failed")#|#(status=="True")#'
    assert tt.primary_pod_labels == {"training.kubeflow.org/job-role": "master"}


def test_other_kinds_get_no_condition_defaults():
    doc = experiment()
    doc["spec"]["trialTemplate"]["trialSpec"] = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow"}
    tt = defaulted(doc).spec.trial_template
    assert tt.success_condition is None and tt.failure_condition is None


def test_collector_defaults_to_stdout():
    assert defaulted(experiment()).spec.metrics_collector_spec.collector.kind == "StdOut"


def test_file_collector_defaults():
    doc = experiment(metricsCollectorSpec={"collector": {"kind": "File"}})
    fsp = defaulted(doc).spec.metrics_collector_spec.source.file_system_path
    assert (fsp.path, fsp.kind, fsp.format) == ("/var/log/katib/metrics.log", "File", "TEXT")


def test_tfevent_collector_defaults():
    doc = experiment(metricsCollectorSpec={"collector": {"kind": "TensorFlowEvent"}})
    fsp = defaulted(doc).spec.metrics_collector_spec.source.file_system_path
    assert (fsp.path, fsp.kind) == ("/var/log/katib/tfevent/", "Directory")


def test_prometheus_collector_defaults():
    doc = experiment(metricsCollectorSpec={"collector": {"kind": "PrometheusMetric"}})
    http = defaulted(doc).spec.metrics_collector_spec.source.http_get
    assert http == {"path": "/metrics", "port": 8080}


def test_distribution_defaults_to_uniform():
    assert defaulted(experiment()).spec.parameters[0].feasible_space.distribution == "uniform"


def test_numbers_become_strings_and_round_trip():
    doc = experiment(parameters=[{"name": "x", "parameterType": "double", "feasibleSpace": {"min": 0.1, "max": 2}}])
    exp = defaulted(doc)
    out = exp.to_dict()
    assert out["spec"]["parameters"][0]["feasibleSpace"] == {"min": "0.1", "max": "2", "distribution": "uniform"}
    assert out["spec"]["trialTemplate"]["primaryContainerName"] == "main"  # camelCase on the way out


def test_sdk_list_in_distribution_is_taken_as_the_list():
    doc = experiment(parameters=[{"name": "x", "parameterType": "categorical",
                                  "feasibleSpace": {"distribution": ["a", "b"]}}])
    fs = defaulted(doc).spec.parameters[0].feasible_space
    assert fs.list_ == ["a", "b"] and fs.distribution == "uniform"
