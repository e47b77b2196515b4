"""nasConfig as a search space: Katib's operation ids, validation with named errors."""

from __future__ import annotations

import pytest

from katib.controller import admit
from katib.errors import ValidationError
from nas import NasSpace, katib_text, parse_katib_text
from tests.nas_tests.conftest import example


def errors_of(doc) -> list[str]:
    with pytest.raises(ValidationError) as info:
        admit(doc)
    return [str(e) for e in info.value.errors]


def test_operations_expand_in_katib_order():
    space = NasSpace.from_config(example("enas")["spec"]["nasConfig"])
    # convolution: 2 filter sizes × 2 filters × 2 strides, in the order the parameters are listed.
    first = [(op.id, op.type, op.params) for op in space.operations[:3]]
    assert first == [
        (0, "convolution", {"filter_size": "3", "num_filter": "16", "stride": "1"}),
        (1, "convolution", {"filter_size": "3", "num_filter": "16", "stride": "2"}),
        (2, "convolution", {"filter_size": "3", "num_filter": "32", "stride": "1"}),
    ]
    # 8 convolutions + 8 separable (2 sizes × 2 filters × 2 multipliers) + 4 depthwise + 4 reductions.
    assert len(space.operations) == 8 + 8 + 4 + 4
    assert space.operations[-1].as_dict() == {"opt_id": 23, "opt_type": "reduction",
                                              "opt_params": {"reduction_type": "avg_pooling", "pool_size": 3}}


def test_nn_config_is_katibs_format():
    space = NasSpace.from_config(example("enas")["spec"]["nasConfig"])
    arc = [[0], [16, 1], [0, 0, 1]]
    config = space.nn_config(arc)
    assert config["num_layers"] == 4 and config["input_sizes"] == [8, 8, 1] and config["output_sizes"] == [10]
    assert set(config["embedding"]) == {"0", "16"}
    assert config["embedding"]["16"]["opt_type"] == "depthwise_convolution"
    text = katib_text(config)
    assert '"' not in text and text.startswith("{'num_layers': 4")
    assert parse_katib_text(text) == config
    assert parse_katib_text('"[[0], [1, 0]]"') == [[0], [1, 0]]  # quotes no shell removed


def test_darts_primitives_are_katibs_names():
    space = NasSpace.from_config(example("darts")["spec"]["nasConfig"])
    assert space.darts_primitives() == ["separable_convolution_3x3", "dilated_convolution_3x3", "max_pooling_3x3",
                                        "skip_connection"]


def test_unknown_operation_and_parameter_are_named():
    doc = example("enas")
    ops = doc["spec"]["nasConfig"]["operations"]
    ops[0]["operationType"] = "attention"
    ops[1]["parameters"][0]["name"] = "kernel"
    ops[3]["parameters"][0]["feasibleSpace"]["list"] = ["max_pooling", "l2_pooling"]
    errors = errors_of(doc)
    assert any(e.startswith("spec.nasConfig.operations[0].operationType: unknown operation 'attention' (known: ") for e in errors)
    assert "spec.nasConfig.operations[1].parameters[0].name: separable_convolution has no parameter 'kernel' " \
           "(it takes: depth_multiplier, filter_size, num_filter, stride)" in errors
    assert any(e.startswith("spec.nasConfig.operations[3].parameters[0].feasibleSpace.list: reduction_type must be among")
               for e in errors)


def test_enas_needs_sizes_and_finite_values():
    doc = example("enas")
    del doc["spec"]["nasConfig"]["graphConfig"]["inputSizes"]
    doc["spec"]["nasConfig"]["operations"][0]["parameters"][0] = {
        "name": "filter_size", "parameterType": "double", "feasibleSpace": {"min": "1", "max": "5"}}
    doc["spec"]["nasConfig"]["operations"][1]["parameters"][1]["feasibleSpace"]["list"] = ["16", "-2"]
    errors = errors_of(doc)
    assert "spec.nasConfig.graphConfig.inputSizes: is required (e.g. [32, 32, 3] and [10])" in errors
    assert "spec.nasConfig.operations[0].parameters[0].feasibleSpace.step: a NAS double parameter needs a step " \
           "(the values must be finite)" in errors
    assert any(e.startswith("spec.nasConfig.operations[1].parameters[1].feasibleSpace: num_filter values must be positive integers")
               for e in errors)


def test_darts_refuses_what_it_cannot_search():
    doc = example("darts")
    doc["spec"]["nasConfig"]["operations"].append({"operationType": "reduction", "parameters": [
        {"name": "reduction_type", "parameterType": "categorical", "feasibleSpace": {"list": ["max_pooling"]}}]})
    doc["spec"]["nasConfig"]["operations"][0]["parameters"] = None
    errors = errors_of(doc)
    assert any(e.startswith("spec.nasConfig.operations[4].operationType: reduction is not a DARTS primitive") for e in errors)
    assert any(e.startswith("spec.nasConfig.operations[0].parameters: ") for e in errors)


def test_parameter_algorithms_refuse_nas_and_nas_algorithms_refuse_parameters():
    doc = example("enas")
    doc["spec"]["algorithm"] = {"algorithmName": "tpe"}
    assert "spec.nasConfig: the tpe algorithm searches parameters; for nasConfig use enas or darts" in errors_of(doc)


def test_darts_settings_are_checked():
    doc = example("darts")
    doc["spec"]["algorithm"]["algorithmSettings"] = [{"name": "num_epochs", "value": "0"},
                                                     {"name": "w_lr", "value": "fast"}]
    errors = errors_of(doc)
    assert "spec.algorithm.algorithmSettings[0].value: num_epochs must be >= 1 (got 0)" in errors
    assert "spec.algorithm.algorithmSettings[1].value: w_lr must be a number (got 'fast')" in errors
