"""Parameters as Katib's admission webhook checks them.

Ported from ``pkg/webhook/v1beta1/experiment/validator/validator_test.go``
(``TestValidateParameters``, on its ``newFakeInstance`` parameters: ``lr`` an int in
[1, 5], ``momentum`` a categorical list), plus cases derived from ``validateParameters``
in ``validator.go``: it checks that int and double parameters have a min and a max, not
how they compare, so ``min == max`` (one value) is legal; Katib's own
``examples/v1beta1/hp-tuning/hyperband.yaml`` relies on it for its resource. A min above
the max is refused here on purpose.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from katib.spec import apply_defaults, parse_experiment, validate
from suggestion import algorithm_names, get_algorithm
from tests.conftest import experiment

VALIDATOR_TEST = "pkg/webhook/v1beta1/experiment/validator/validator_test.go"
VALIDATOR = "pkg/webhook/v1beta1/experiment/validator/validator.go"
FAKE = [
    {"name": "lr", "parameterType": "int", "feasibleSpace": {"max": "5", "min": "1", "distribution": "uniform"}},
    {"name": "momentum", "parameterType": "categorical", "feasibleSpace": {"list": ["0.95", "0.85", "0.75"]}},
]


def changed(index: int, **space: Any) -> list[dict[str, Any]]:
    ps = copy.deepcopy(FAKE)
    if "parameterType" in space:
        ps[index]["parameterType"] = space.pop("parameterType")
    if space.pop("empty", False):
        ps[index]["feasibleSpace"] = {}
    ps[index]["feasibleSpace"].update(space)
    ps[index]["feasibleSpace"] = {k: v for k, v in ps[index]["feasibleSpace"].items() if v is not None}
    return ps


def one(kind: str, **space: str) -> list[dict[str, Any]]:
    return [{"name": "lr", "parameterType": kind, "feasibleSpace": space}, FAKE[1]]


CASES = [
    pytest.param(changed(0, parameterType="invalid-type"), False, id=f"{VALIDATOR_TEST}:invalid-parameter-type"),
    pytest.param(changed(0, empty=True), False, id=f"{VALIDATOR_TEST}:feasible-space-is-nil"),
    pytest.param(changed(0, list=["invalid-list"]), False, id=f"{VALIDATOR_TEST}:not-empty-list-for-int"),
    pytest.param(changed(0, empty=True, step="1"), False, id=f"{VALIDATOR_TEST}:empty-max-and-min-for-int"),
    pytest.param(changed(1, max="1"), False, id=f"{VALIDATOR_TEST}:not-empty-max-for-categorical"),
    pytest.param(changed(0, distribution="invalid-distribution"), False, id=f"{VALIDATOR_TEST}:invalid-distribution"),
    pytest.param(FAKE, True, id=f"{VALIDATOR_TEST}:valid-parameters"),
    pytest.param(one("int", min="1", max="1"), True, id=f"{VALIDATOR}:int-min-equals-max"),
    pytest.param(one("double", min="0.5", max="0.5"), True, id=f"{VALIDATOR}:double-min-equals-max"),
    pytest.param(one("double", min="0.5", max="0.5", step="0.1"), True, id=f"{VALIDATOR}:double-min-equals-max-with-step"),
    pytest.param(one("int", min="3", max="3", step="2"), True, id=f"{VALIDATOR}:int-min-equals-max-with-step"),
    pytest.param(one("double", min="0.01", max="0.01", distribution="logUniform"), True,
                 id=f"{VALIDATOR}:log-uniform-min-equals-max"),
    pytest.param(one("double", min="0.5", max="0.5", distribution="normal"), True,
                 id=f"{VALIDATOR}:normal-min-equals-max"),
    pytest.param(one("int", min="5", max="1"), True, id=f"{VALIDATOR}:min-above-max",
                 marks=pytest.mark.xfail(strict=True, reason="Katib does not compare min and max; an empty range "
                                                            "is refused here (docs/algorithms.md)")),
]


def parameter_errors(parameters: list[dict[str, Any]]) -> list[str]:
    doc = experiment(parameters=parameters)
    doc["spec"]["trialTemplate"]["trialParameters"] = [{"name": p["name"], "reference": p["name"]} for p in parameters]
    doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]["command"] = [
        "echo", *[f"${{trialParameters.{p['name']}}}" for p in parameters]]
    errors = validate(apply_defaults(parse_experiment(doc)))
    return [str(e) for e in errors if str(e).startswith("spec.parameters")]


@pytest.mark.parametrize(("parameters", "valid"), CASES)
def test_validate_parameters(parameters, valid):
    errors = parameter_errors(parameters)
    assert (not errors) is valid, errors


def test_katibs_hyperband_example_is_admitted():
    """examples/v1beta1/hp-tuning/hyperband.yaml: ``num-epochs`` is an int in [1, 1]."""
    from katib.controller import admit

    exp = admit(yaml.safe_load(HYPERBAND_EXAMPLE))
    got = get_algorithm("hyperband").suggest(exp, [], 2, {})
    assert [a.parameters["num-epochs"] for a in got] == ["1", "1"]  # the plan's first rung, on r = 1


SEARCHES = sorted(n for n in algorithm_names() if not get_algorithm(n).searches_nas and n != "hyperband")


@pytest.mark.parametrize("name", SEARCHES)
def test_every_algorithm_proposes_the_one_value(name):
    """A parameter with min == max gets that value from every algorithm (and the others
    are still searched)."""
    params = [{"name": "a", "parameterType": "double", "feasibleSpace": {"min": "0.5", "max": "0.5"}},
              {"name": "b", "parameterType": "int", "feasibleSpace": {"min": "4", "max": "4"}},
              {"name": "c", "parameterType": "double", "feasibleSpace": {"min": "0", "max": "1", "step": "0.25"}},
              {"name": "d", "parameterType": "double", "feasibleSpace": {"min": "2", "max": "2", "distribution": "normal"}}]
    if name == "grid":  # its doubles need a step
        params[0]["feasibleSpace"]["step"] = "0.1"
        params[3]["feasibleSpace"]["step"] = "1"
    settings = {"pbt": [{"name": "suggestion_trial_dir", "value": "/c"}, {"name": "n_population", "value": "5"},
                        {"name": "truncation_threshold", "value": "0.2"}],
                "bayesianoptimization": [{"name": "n_initial_points", "value": "2"}, {"name": "base_estimator", "value": "ET"}],
                "tpe": [{"name": "n_startup_trials", "value": "2"}],
                "multivariate-tpe": [{"name": "n_startup_trials", "value": "2"}]}.get(name, [])
    doc = experiment(algorithm={"algorithmName": name, "algorithmSettings": settings}, parameters=params,
                     maxTrialCount=5, parallelTrialCount=1)
    exp = apply_defaults(parse_experiment(doc))
    assert not get_algorithm(name).validate(exp)
    alg = get_algorithm(name)
    from suggestion import TrialView

    history: list[TrialView] = []
    state: dict = {}
    for _ in range(4):
        for a in alg.suggest(exp, history, 1, state):
            assert (a.parameters["a"], a.parameters["b"], float(a.parameters["d"])) == ("0.5", "4", 2.0), a.parameters
            history.append(TrialView(a.name or f"t{len(history)}", a.parameters, "Succeeded",
                                     float(a.parameters["c"])))
    assert history


HYPERBAND_EXAMPLE = """
apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata:
  namespace: kubeflow
  name: hyperband
spec:
  parallelTrialCount: 2
  maxTrialCount: 2
  objective:
    type: minimize
    goal: 0.001
    objectiveMetricName: loss
  algorithm:
    algorithmName: hyperband
    algorithmSettings:
      - name: "resource_name"
        value: "num-epochs"
      - name: "eta"
        value: "2"
      - name: "r_l"
        value: "2"
  maxFailedTrialCount: 2
  parameters:
    - name: lr
      parameterType: double
      feasibleSpace:
        min: "0.01"
        max: "0.05"
    - name: momentum
      parameterType: double
      feasibleSpace:
        min: "0.5"
        max: "0.9"
    - name: num-epochs
      parameterType: int
      feasibleSpace:
        min: "1"
        max: "1"
  trialTemplate:
    primaryContainerName: training-container
    trialParameters:
      - name: learningRate
        description: Learning rate for the training model
        reference: lr
      - name: momentum
        description: Momentum for the training model
        reference: momentum
      - name: numberEpochs
        description: Number of epochs to train the model
        reference: num-epochs
    trialSpec:
      apiVersion: batch/v1
      kind: Job
      spec:
        template:
          spec:
            containers:
              - name: training-container
                image: ghcr.io/kubeflow/katib/pytorch-mnist-cpu:latest
                command:
                  - "python3"
                  - "/opt/pytorch-mnist/mnist.py"
                  - "--epochs=${trialParameters.numberEpochs}"
                  - "--batch-size=16"
                  - "--lr=${trialParameters.learningRate}"
                  - "--momentum=${trialParameters.momentum}"
            restartPolicy: Never
"""


@pytest.mark.xfail(strict=True, reason="Katib's optuna service (grid, multivariate-tpe) refuses normal and logNormal "
                                       "(it dropped such a parameter before); every algorithm here samples them, "
                                       "truncated to [min, max] (docs/algorithms.md)")
@pytest.mark.parametrize("name", ["grid", "multivariate-tpe"])
@pytest.mark.parametrize(("kind", "distribution"), [("double", "normal"), ("double", "logNormal"), ("int", "normal"),
                                                    ("int", "logNormal")])
def test_optuna_unsupported_distribution_raises(name, kind, distribution):
    """test_optuna_service.py TestOptunaUnsupportedDistribution: x in [0.1, 0.9] (a double)
    or [1, 9] (an int, step 1) with a normal or logNormal distribution; Katib's service
    raises "Unsupported distribution" at its first suggestion."""
    space = {"min": "0.1", "max": "0.9", "step": "0.1"} if kind == "double" else {"min": "1", "max": "9", "step": "1"}
    params = [{"name": "x", "parameterType": kind, "feasibleSpace": {**space, "distribution": distribution}}]
    doc = experiment(algorithm={"algorithmName": name}, parameters=params, maxTrialCount=3, parallelTrialCount=1)
    exp = apply_defaults(parse_experiment(doc))
    alg = get_algorithm(name)
    errors = [str(e) for e in alg.validate(exp) + validate(exp)]
    assert any("distribution" in e for e in errors), f"admitted; proposed {alg.suggest(exp, [], 1, {})[0].parameters}"
