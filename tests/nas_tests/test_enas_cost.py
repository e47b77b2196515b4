"""ENAS' work per suggestion is bounded as a whole, not only setting by setting: the
controller trains ``controller_train_steps`` steps on each finished trial, each step walking
``numLayers`` layers of an LSTM of ``controller_hidden_size`` units over the operations, so
the product is what pins a CPU (docs/security.md, "Bounded work per request")."""

from __future__ import annotations

import time
from typing import Any

import pytest

from katib.controller import admit
from katib.errors import ValidationError
from suggestion import TrialView, get_algorithm
from tests.conftest import experiment
from tests.nas_tests.conftest import example


def enas_doc(layers: int = 4, parallel: int = 3, parameters: list[dict[str, Any]] | None = None,
             **settings: str) -> dict[str, Any]:
    doc = experiment(algorithm={"algorithmName": "enas",
                                "algorithmSettings": [{"name": k, "value": v} for k, v in settings.items()]},
                     parallelTrialCount=parallel, maxTrialCount=max(100, parallel))
    del doc["spec"]["parameters"]
    doc["spec"]["nasConfig"] = {
        "graphConfig": {"numLayers": layers, "inputSizes": [8, 8, 1], "outputSizes": [10]},
        "operations": [{"operationType": "convolution", "parameters": parameters or [
            {"name": "filter_size", "parameterType": "categorical", "feasibleSpace": {"list": ["3", "5"]}}]}]}
    doc["spec"]["trialTemplate"]["trialParameters"] = [{"name": "x", "reference": "architecture"}]
    return doc


def errors_of(doc: dict[str, Any]) -> list[str]:
    with pytest.raises(ValidationError) as info:
        admit(doc)
    return [str(e) for e in info.value.errors]


def test_each_setting_at_its_bound_but_all_together_is_refused_naming_the_rule():
    # Measured: about 4,900 s of one core per finished trial learned from (1.1e11 units).
    errors = errors_of(enas_doc(layers=256, parallel=1, controller_hidden_size="512", controller_train_steps="1000"))
    assert len(errors) == 1, errors
    message = errors[0]
    assert message.startswith("spec.algorithm.algorithmSettings: enas would train its controller")
    for name in ("controller_train_steps", "controller_hidden_size", "numLayers", "parallelTrialCount", "2^33"):
        assert name in message, message
    assert "1000 × 1 × 256 × (512² + 512 × 2 / 8 + 256 × (256 + 128))" in message


def test_parallel_trials_multiply_the_work():
    assert admit(enas_doc(layers=32, parallel=1, controller_train_steps="1000"))
    errors = errors_of(enas_doc(layers=32, parallel=100, controller_train_steps="1000"))
    assert "parallelTrialCount" in errors[0] and "1000 × 100 × 32" in errors[0]


@pytest.mark.parametrize("doc", [
    pytest.param(lambda: example("enas"), id="katib-example"),
    pytest.param(lambda: enas_doc(), id="katib-defaults"),
    pytest.param(lambda: enas_doc(layers=256), id="defaults-256-layers"),
    pytest.param(lambda: enas_doc(parallel=1000), id="defaults-1000-parallel"),
    pytest.param(lambda: enas_doc(layers=3, parallel=1, controller_hidden_size="512"), id="hidden-512"),
    pytest.param(lambda: enas_doc(layers=3, parallel=1, controller_train_steps="1000"), id="steps-1000"),
    pytest.param(lambda: enas_doc(layers=8, parallel=1, controller_hidden_size="512", controller_train_steps="1000"),
                 id="both-at-bound-8-layers"),
])
def test_katibs_defaults_examples_and_real_sizes_stay_valid(doc):
    assert admit(doc()).spec.algorithm.algorithm_name == "enas"


def test_a_huge_operation_parameter_is_refused_before_its_values_are_listed():
    big = [{"name": "filter_size", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "10000000"}}]
    start = time.monotonic()
    errors = errors_of(enas_doc(parameters=big))
    assert time.monotonic() - start < 2  # listing 10^7 values took seconds and hundreds of MB
    assert any("spec.nasConfig.operations[0].parameters[0].feasibleSpace: has 10000000 values" in e and "at most 1000" in e
               for e in errors), errors


def test_operations_multiplied_out_are_bounded():
    values = {"list": [str(i) for i in range(1, 101)]}  # 100 × 100 × 100 = 10^6 candidate operations
    params = [{"name": n, "parameterType": "categorical", "feasibleSpace": values}
              for n in ("filter_size", "num_filter", "stride")]
    errors = errors_of(enas_doc(parameters=params))
    assert any(e.startswith("spec.nasConfig.operations: expand to 1000000 candidate operations") and "at most 1000" in e
               for e in errors), errors
    params[2]["feasibleSpace"] = {"list": ["1"]}  # 10^4: still too many
    assert any("expand to 10000 candidate" in e for e in errors_of(enas_doc(parameters=params)))
    params[1]["feasibleSpace"] = {"list": [str(i) for i in range(1, 11)]}  # 10^3: fine
    assert admit(enas_doc(parameters=params))


def test_one_suggestion_learns_from_at_most_the_parallel_trials():
    """The bound holds per suggestion: more finished trials than parallel ones (a restart,
    retries) are learned from over the next suggestions, not all at once."""
    exp = admit(enas_doc(parallel=1, controller_train_steps="2", random_state="3"))
    alg = get_algorithm("enas")
    state: dict[str, Any] = {}
    first = alg.suggest(exp, [], 1, state) + alg.suggest(exp, [], 1, {}) + alg.suggest(exp, [], 1, {"x": 1})
    views = [TrialView(f"t{i}", a.parameters, "Succeeded", 0.5 + i / 10) for i, a in enumerate(first)]
    alg.suggest(exp, views, 1, state)
    assert state["learned"] == ["t0"] and state["controller"]["steps"] == 2
    alg.suggest(exp, views, 1, state)
    alg.suggest(exp, views, 1, state)
    assert state["learned"] == ["t0", "t1", "t2"] and state["controller"]["steps"] == 6
