"""Every validation rule of reference §4 (and the checks Katib forgets): one bad document
per rule, asserting the field path and the message the user sees."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from katib.controller import admit
from katib.errors import ValidationError
from katib.spec import load_documents
from tests.conftest import REPO, experiment


def errors_of(doc) -> list[str]:
    with pytest.raises(ValidationError) as info:
        admit(doc)
    return [str(e) for e in info.value.errors]


def with_spec(path: str, value, doc=None):
    """The base experiment with the dotted ``path`` set (None deletes it)."""
    doc = copy.deepcopy(doc or experiment())
    parts = path.split(".")
    node = doc
    for part in parts[:-1]:
        node = node[int(part)] if part.isdigit() else node[part]
    last = parts[-1]
    if value is None:
        if last.isdigit():
            del node[int(last)]
        else:
            node.pop(last, None)
    elif last.isdigit():
        if int(last) == len(node):
            node.append(value)
        else:
            node[int(last)] = value
    else:
        node[last] = value
    return doc


CONTAINER = "spec.trialTemplate.trialSpec.spec.template.spec.containers.0"
FS = "spec.parameters.0.feasibleSpace"

CASES = [
    # 1. names
    ("metadata.name", "Bad_Name", "metadata.name: must consist of lower case letters"),
    ("metadata.name", "a" * 41, "metadata.name: must be at most 40 characters (got 41)"),
    ("metadata.name", None, "metadata.name: is required"),
    # 2. counts
    ("spec.maxFailedTrialCount", -1, "spec.maxFailedTrialCount: must be >= 0 (got -1)"),
    ("spec.maxTrialCount", 0, "spec.maxTrialCount: must be > 0 (got 0)"),
    ("spec.parallelTrialCount", 0, "spec.parallelTrialCount: must be > 0 (got 0)"),
    ("spec.maxFailedTrialCount", 5, "spec.maxFailedTrialCount: must be <= maxTrialCount (got 5 > 4)"),
    ("spec.parallelTrialCount", 5, "spec.parallelTrialCount: must be <= maxTrialCount (got 5 > 4)"),
    # 4. objective
    ("spec.objective", None, "spec.objective: is required"),
    ("spec.objective.type", "minimise", "spec.objective.type: must be minimize or maximize (got 'minimise')"),
    ("spec.objective.objectiveMetricName", None, "spec.objective.objectiveMetricName: is required"),
    ("spec.objective.additionalMetricNames", ["loss"], "spec.objective.additionalMetricNames: must not contain the objective metric 'loss'"),
    ("spec.objective.metricStrategies", [{"name": "loss", "value": "avg"}], "spec.objective.metricStrategies[0].value: must be min, max or latest (got 'avg')"),
    # 5. algorithms, resume policy
    ("spec.algorithm.algorithmName", None, "spec.algorithm.algorithmName: is required"),
    ("spec.algorithm.algorithmName", "simulated-annealing", "spec.algorithm.algorithmName: unknown algorithm 'simulated-annealing' (available: auto, bayesianoptimization, cmaes, darts, enas, grid, hyperband, multivariate-tpe, pbt, random, sobol, tpe)"),
    ("spec.earlyStopping", {"algorithmName": "nope"}, "spec.earlyStopping.algorithmName: unknown early stopping algorithm 'nope'"),
    ("spec.resumePolicy", "Sometimes", "spec.resumePolicy: must be one of Never, LongRunning, FromVolume (got 'Sometimes')"),
    # 6. trial template
    ("spec.trialTemplate", None, "spec.trialTemplate: is required"),
    ("spec.trialTemplate.primaryContainerName", None, "spec.trialTemplate.primaryContainerName: is required"),
    ("spec.trialTemplate.trialParameters", [], "spec.trialTemplate.trialParameters: must list at least one trial parameter"),
    ("spec.trialTemplate.configMap", {"configMapName": "c", "templatePath": "t"}, "spec.trialTemplate: exactly one of trialSpec and configMap must be set"),
    ("spec.trialTemplate.trialSpec.kind", "Workflow", "spec.trialTemplate.successCondition: is required for trials of kind Workflow"),
    # 7. trial parameters
    ("spec.trialTemplate.trialParameters.0.reference", None, "spec.trialTemplate.trialParameters[0].reference: is required"),
    ("spec.trialTemplate.trialParameters.0.name", "{x}", "spec.trialTemplate.trialParameters[0].name: must not contain '{' or '}'"),
    ("spec.trialTemplate.trialParameters.0.reference", "y", "spec.trialTemplate.trialParameters[0].reference: must name a parameter (x) or a metadata key"),
    ("spec.trialTemplate.trialParameters.1", {"name": "x", "reference": "${trialSpec.Name}"}, "spec.trialTemplate.trialParameters[1].name: duplicate trial parameter name 'x'"),
    ("spec.trialTemplate.trialParameters.1", {"name": "unused", "reference": "${trialSpec.Name}"}, "spec.trialTemplate.trialParameters[1].name: ${trialParameters.unused} does not appear in the trial template"),
    (f"{CONTAINER}.args", ["--y=${trialParameters.y}"], "spec.trialTemplate.trialSpec: placeholder ${trialParameters.y} has no trial parameter"),
    # 8. rendered template
    ("spec.trialTemplate.trialSpec.apiVersion", None, "spec.trialTemplate.trialSpec.apiVersion: is required"),
    ("spec.trialTemplate.trialSpec.metadata", {"name": "fixed"}, "spec.trialTemplate.trialSpec.metadata.name: must not be set"),
    (f"{CONTAINER}.image", None, "spec.trialTemplate.trialSpec.spec.template.spec.containers[0].image: is required"),
    ("spec.trialTemplate.trialSpec.spec.template.spec.restartPolicy", "Always", "restartPolicy: must be Never or OnFailure for a Job (got 'Always')"),
    (f"{CONTAINER}.name", "other", "spec.trialTemplate.primaryContainerName: no container named 'main' in the trial template"),
    # validator_test.go TestValidateTrialJob, "Trial template has invalid Batch Job structure": a batch/v1 Job
    # template must convert to a Job whole; a misspelt container field is refused, not run without it.
    ("spec.trialTemplate.trialSpec.spec.template.invalidSpec", "not-job-format", "spec.trialTemplate.trialSpec.spec.template.invalidSpec: is not a field of a pod template"),
    (f"{CONTAINER}.comand", ["python3"], "spec.trialTemplate.trialSpec.spec.template.spec.containers[0].comand: is not a field of a container"),
    ("spec.trialTemplate.trialSpec.spec.backofLimit", 2, "spec.trialTemplate.trialSpec.spec.backofLimit: is not a field of a Job's spec"),
    # "Valid case with nvidia.com/gpu resource in Trial template"; fields of recent Kubernetes versions.
    (f"{CONTAINER}.resources", {"limits": {"nvidia.com/gpu": 1}, "requests": {"nvidia.com/gpu": 1}}, None),
    ("spec.trialTemplate.trialSpec.spec.podReplacementPolicy", "Failed", None),
    ("spec.trialTemplate.trialSpec.spec.template.spec.hostUsers", False, None),
    # 9. search space
    ("spec.parameters", None, "spec: exactly one of parameters and nasConfig must be set"),
    # 10. parameters
    ("spec.parameters.0.parameterType", "float", "spec.parameters[0].parameterType: must be one of double, int, discrete, categorical (got 'float')"),
    (f"{FS}.distribution", "beta", "spec.parameters[0].feasibleSpace.distribution: must be one of uniform, logUniform, normal, logNormal (got 'beta')"),
    ("spec.parameters.0.feasibleSpace", {}, "spec.parameters[0].feasibleSpace: must not be empty"),
    (f"{FS}.max", None, "spec.parameters[0].feasibleSpace.max: is required for a double parameter"),
    (f"{FS}.list", ["1"], "spec.parameters[0].feasibleSpace.list: must not be set for a double parameter"),
    (f"{FS}.min", "0.95", "spec.parameters[0].feasibleSpace.min: must not exceed max (got 0.95 > 0.9)"),
    (f"{FS}.min", "abc", "spec.parameters[0].feasibleSpace.min: must be a number (got 'abc')"),
    (f"{FS}.step", "0", "spec.parameters[0].feasibleSpace.step: must be > 0 (got 0)"),
    (f"{FS}.step", "2", "spec.parameters[0].feasibleSpace.step: must be at most max - min = 0.8 (got 2)"),
    (f"{FS}.distribution", "logUniform", None),  # valid: 0.1 > 0
    ("spec.parameters.0", {"name": "x", "parameterType": "int", "feasibleSpace": {"min": "1.5", "max": "3"}}, "spec.parameters[0].feasibleSpace.min: must be an integer (got '1.5')"),
    ("spec.parameters.0", {"name": "x", "parameterType": "double", "feasibleSpace": {"min": "0", "max": "1", "distribution": "logUniform"}}, "spec.parameters[0].feasibleSpace.min: must be > 0 for the logUniform distribution (got 0)"),
    ("spec.parameters.0", {"name": "x", "parameterType": "categorical", "feasibleSpace": {"list": []}}, "spec.parameters[0].feasibleSpace.list: must be a non-empty list for a categorical parameter"),
    ("spec.parameters.0", {"name": "x", "parameterType": "categorical", "feasibleSpace": {"list": ["a"], "min": "1"}}, "spec.parameters[0].feasibleSpace.min: must not be set for a categorical parameter"),
    ("spec.parameters.0", {"name": "x", "parameterType": "discrete", "feasibleSpace": {"list": ["1", "two"]}}, "spec.parameters[0].feasibleSpace.list[1]: must be a number for a discrete parameter (got 'two')"),
    ("spec.parameters.1", {"name": "x", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "3"}}, "spec.parameters[1].name: duplicate parameter name 'x'"),
    # 11. collectors
    ("spec.metricsCollectorSpec", {"collector": {"kind": "Sidecar"}}, "spec.metricsCollectorSpec.collector.kind: must be one of StdOut, File, TensorFlowEvent, PrometheusMetric, Custom, Push (got 'Sidecar')"),
    ("spec.metricsCollectorSpec", {"collector": {"kind": "File"}, "source": {"fileSystemPath": {"path": "metrics.log", "kind": "File"}}}, "spec.metricsCollectorSpec.source.fileSystemPath.path: must be an absolute path (got 'metrics.log')"),
    ("spec.metricsCollectorSpec", {"collector": {"kind": "File"}, "source": {"fileSystemPath": {"path": "/m", "kind": "Directory"}}}, "spec.metricsCollectorSpec.source.fileSystemPath.kind: must be File for the File collector (got 'Directory')"),
    ("spec.metricsCollectorSpec", {"collector": {"kind": "File"}, "source": {"fileSystemPath": {"path": "/m", "kind": "File", "format": "XML"}}}, "spec.metricsCollectorSpec.source.fileSystemPath.format: must be TEXT or JSON (got 'XML')"),
    ("spec.metricsCollectorSpec", {"collector": {"kind": "File"}, "source": {"fileSystemPath": {"path": "/m", "kind": "File", "format": "JSON"}, "filter": {"metricsFormat": ["(a)=(b)"]}}}, "spec.metricsCollectorSpec.source.filter: must not be set with the JSON format"),
    ("spec.metricsCollectorSpec", {"collector": {"kind": "TensorFlowEvent"}, "source": {"fileSystemPath": {"path": "/tb", "kind": "File"}}}, "spec.metricsCollectorSpec.source.fileSystemPath.kind: must be Directory for the TensorFlowEvent collector (got 'File')"),
    # A file the server keeps in the trial's folder, where the path is mapped: bound writable for the collector, the
    # trial could write its pid, handle or exit record (and a Directory there replaced the file).
    ("spec.metricsCollectorSpec", {"collector": {"kind": "File"}, "source": {"fileSystemPath": {"path": "/pid", "kind": "File"}}}, "spec.metricsCollectorSpec.source.fileSystemPath.path: must not be the trial folder's 'pid', a file the server keeps there (got '/pid')"),
    ("spec.metricsCollectorSpec", {"collector": {"kind": "File"}, "source": {"fileSystemPath": {"path": "/trial.exit", "kind": "File"}}}, "spec.metricsCollectorSpec.source.fileSystemPath.path: must not be the trial folder's 'trial.exit', a file the server keeps there (got '/trial.exit')"),
    ("spec.metricsCollectorSpec", {"collector": {"kind": "TensorFlowEvent"}, "source": {"fileSystemPath": {"path": "/handle.json/tb", "kind": "Directory"}}}, "spec.metricsCollectorSpec.source.fileSystemPath.path: must not be the trial folder's 'handle.json', a file the server keeps there (got '/handle.json/tb')"),
    ("spec.metricsCollectorSpec", {"collector": {"kind": "PrometheusMetric"}, "source": {"httpGet": {"port": -1, "path": "/metrics"}}}, "spec.metricsCollectorSpec.source.httpGet.port: must be a positive port number (got -1)"),
    ("spec.metricsCollectorSpec", {"collector": {"kind": "PrometheusMetric"}, "source": {"httpGet": {"port": "http", "path": "/metrics"}}}, "spec.metricsCollectorSpec.source.httpGet.port: must be a positive port number (got 'http')"),
    ("spec.metricsCollectorSpec", {"collector": {"kind": "PrometheusMetric"}, "source": {"httpGet": {"port": 80, "path": "metrics"}}}, "spec.metricsCollectorSpec.source.httpGet.path: must start with '/' (got 'metrics')"),
    ("spec.metricsCollectorSpec", {"collector": {"kind": "Custom"}}, "spec.metricsCollectorSpec.collector.customCollector: is required for the Custom collector"),
    # validator_test.go TestValidateMetricsCollector: "Invalid metrics filer ... when file format is JSON" (any
    # filter, even empty), "Invalid file format for TF event metrics collector", "Invalid path for Custom
    # metrics collector".
    ("spec.metricsCollectorSpec", {"collector": {"kind": "File"}, "source": {"fileSystemPath": {"path": "/m", "kind": "File", "format": "JSON"}, "filter": {}}}, "spec.metricsCollectorSpec.source.filter: must not be set with the JSON format"),
    ("spec.metricsCollectorSpec", {"collector": {"kind": "TensorFlowEvent"}, "source": {"fileSystemPath": {"path": "/tb", "kind": "Directory", "format": "JSON"}}}, "spec.metricsCollectorSpec.source.fileSystemPath.format: must be empty for the TensorFlowEvent collector (got 'JSON')"),
    ("spec.metricsCollectorSpec", {"collector": {"kind": "Custom", "customCollector": {"name": "c", "image": "x"}}, "source": {"fileSystemPath": {"path": "not/absolute", "kind": "File"}}}, "spec.metricsCollectorSpec.source.fileSystemPath: must have an absolute path and the kind File or Directory for the Custom collector (got path 'not/absolute', kind 'File')"),
    ("spec.metricsCollectorSpec", {"collector": {"kind": "Custom", "customCollector": {"name": "c", "image": "x"}}, "source": {"fileSystemPath": {"path": "/m", "kind": "Socket"}}}, "spec.metricsCollectorSpec.source.fileSystemPath: must have an absolute path and the kind File or Directory for the Custom collector (got path '/m', kind 'Socket')"),
    # 12. filters
    ("spec.metricsCollectorSpec", {"source": {"filter": {"metricsFormat": ["(unclosed"]}}}, "spec.metricsCollectorSpec.source.filter.metricsFormat[0]: is not a valid regular expression"),
    # What Katib's collector (Go's RE2) refuses too; Python's re would backtrack on it.
    ("spec.metricsCollectorSpec", {"source": {"filter": {"metricsFormat": ["(\\w+)=(\\1)"]}}}, "spec.metricsCollectorSpec.source.filter.metricsFormat[0]: is not a regular expression Katib's collector takes (Go's RE2 syntax: no backreferences or lookaround): invalid escape sequence: \\1"),
    ("spec.metricsCollectorSpec", {"source": {"filter": {"metricsFormat": ["(\\w+)=\\d+"]}}}, "spec.metricsCollectorSpec.source.filter.metricsFormat[0]: must have at least two groups, the metric name and then its value (got 1)"),
    # 13. algorithm settings
    ("spec.algorithm.algorithmSettings", [{"name": "seed", "value": "1"}], "spec.algorithm.algorithmSettings[0].name: unknown setting 'seed' for algorithm random (known: random_state)"),
    ("spec.algorithm.algorithmSettings", [{"name": "random_state", "value": "x"}], "spec.algorithm.algorithmSettings[0].value: random_state must be an integer (got 'x')"),
    ("spec.algorithm", {"algorithmName": "grid"}, "spec.parameters[0].feasibleSpace.step: is required for double parameters with the grid algorithm"),
    # types and typos
    ("spec.maxTrialCounts", 3, "spec.maxTrialCounts: unknown field"),
    ("spec.maxTrialCount", "many", "spec.maxTrialCount: Input should be a valid integer"),
]


@pytest.mark.parametrize(("path", "value", "message"), CASES, ids=[f"{c[0]}={str(c[1])[:20]}" for c in CASES])
def test_rule(path, value, message):
    doc = with_spec(path, value)
    if message is None:
        admit(doc)
        return
    errors = errors_of(doc)
    assert any(message in e for e in errors), errors


def test_base_experiment_is_valid():
    exp = admit(experiment())
    assert exp.name == "demo"


def test_all_errors_are_reported_together():
    doc = with_spec("spec.maxTrialCount", 0, with_spec(f"{FS}.min", "5", with_spec("spec.typo", 1)))
    errors = errors_of(doc)
    assert "spec.typo: unknown field" in errors
    assert any(e.startswith("spec.maxTrialCount: must be > 0") for e in errors)
    assert any(e.startswith("spec.parameters[0].feasibleSpace.min: must not exceed max") for e in errors)


def test_metadata_references_are_valid():
    doc = with_spec("spec.trialTemplate.trialParameters.1", {"name": "trialName", "reference": "${trialSpec.Name}"})
    doc = with_spec(f"{CONTAINER}.args", ["--name=${trialParameters.trialName}"], doc)
    admit(doc)


def test_nas_config_is_the_other_search_space():
    doc = with_spec("spec.parameters", None)
    doc["spec"]["nasConfig"] = {"graphConfig": {"numLayers": 0}, "operations": []}
    errors = errors_of(doc)
    assert "spec.nasConfig.graphConfig.numLayers: must be > 0" in errors
    assert "spec.nasConfig.operations: must list at least one operation" in errors


def test_invalid_yaml_names_line_and_column():
    with pytest.raises(ValidationError) as info:
        load_documents("spec:\n  a: [1, 2\n")
    assert str(info.value.errors[0]).startswith("line 3, column 1: invalid YAML")


# Experiments from Katib's documentation and examples, whatever their trial kind, must pass.
KATIB_DOCS = REPO / "tests" / "data" / "katib-examples"


@pytest.mark.parametrize("path", sorted(KATIB_DOCS.glob("*.yaml")), ids=lambda p: p.name)
def test_katib_examples_validate(path: Path):
    for doc in yaml.safe_load_all(path.read_text()):
        if doc and doc.get("kind") == "Experiment":
            admit(doc)


@pytest.mark.parametrize("path", sorted((REPO / "examples").glob("*.yaml")), ids=lambda p: p.name)
def test_our_examples_validate(path: Path):
    admit(yaml.safe_load(path.read_text()))


def test_a_validation_error_crosses_a_process_boundary_whole():
    """Raised in a Ray task or a process pool, it is pickled: it used to come back with each
    character of its message as an error of its own."""
    import pickle

    from katib.errors import FieldError, ValidationError

    error = ValidationError([FieldError("spec.parameters[0].name", "is required")], "experiment")
    back = pickle.loads(pickle.dumps(error))
    assert back.errors == error.errors and back.what == "experiment" and str(back) == str(error)


def test_a_filter_with_more_than_two_groups_is_katibs():
    """Katib's webhook asks for two groups at least, and its collector reads the first two
    (name, value): a third, as in ``(\\w+)=(\\d+)(\\s|$)``, was refused here."""
    from katib.controller import admit
    from tests.conftest import experiment

    exp = admit(experiment(metricsCollectorSpec={"source": {"filter": {"metricsFormat": [r"(\w+)=(\d+)(\s|$)"]}}}))
    assert exp.spec.metrics_collector_spec.source.filter.metrics_format == [r"(\w+)=(\d+)(\s|$)"]


def test_a_filter_nested_thousands_deep_is_a_fields_error_not_a_500():
    """Python's re.compile raised RecursionError out of admission (the API's 500)."""
    from katib.controller import admit
    from tests.conftest import experiment

    deep = "(" * 2000 + "a" + ")" * 2000
    with pytest.raises(ValidationError) as info:
        admit(experiment(metricsCollectorSpec={"source": {"filter": {"metricsFormat": [deep]}}}))
    assert "metricsFormat[0]" in str(info.value) and "nests too deeply" in str(info.value)


def test_a_strategy_for_a_metric_not_collected_is_kept_as_katib_keeps_it():
    """Katib's defaulting keeps every metricStrategies entry and collects only the metrics
    named; one for another metric was refused here."""
    from katib.controller import admit
    from tests.conftest import experiment

    doc = experiment()
    doc["spec"]["objective"]["metricStrategies"] = [{"name": "Validation-loss", "value": "min"}]
    exp = admit(doc)
    assert {"name": "Validation-loss", "value": "min"} in [m.to_dict() for m in exp.spec.objective.metric_strategies]


def test_katibs_defaults_fill_empty_values_too():
    """Katib's defaulting fills a Prometheus source's port 0 and empty path (its Go zero
    values), as it fills them unset (a Kubeflow job's empty primaryPodLabels too)."""
    from katib.controller import admit
    from tests.conftest import experiment

    doc = experiment(metricsCollectorSpec={"collector": {"kind": "PrometheusMetric"},
                                           "source": {"httpGet": {"port": 0, "path": ""}}})
    exp = admit(doc)
    assert exp.spec.metrics_collector_spec.source.http_get == {"port": 8080, "path": "/metrics"}


def test_a_searched_parameter_no_trial_parameter_references_is_refused():
    """Katib's manifest generator fails every trial's creation then
    (errParamNotFoundInTrialParameters, generator_test.go); we refuse it when it is written."""
    doc = with_spec("spec.parameters.1", {"name": "momentum", "parameterType": "double",
                                          "feasibleSpace": {"min": "0.5", "max": "0.9"}})
    assert errors_of(doc) == ["spec.parameters[1].name: 'momentum' is not referenced by any "
                              "spec.trialTemplate.trialParameters entry (add one with reference: momentum, "
                              "or drop the parameter)"]


def test_a_label_or_annotation_reference_names_a_key_the_template_has():
    """Katib's generator: "failed to fetch Label"; a typo must not hand trials an empty string."""
    doc = with_spec("spec.trialTemplate.trialParameters.1", {"name": "team", "reference": "${trialSpec.Labels[tema]}"})
    doc = with_spec("spec.trialTemplate.trialParameters.2", {"name": "note", "reference": "${trialSpec.Annotations[n]}"},
                    doc)
    doc = with_spec(f"{CONTAINER}.args", ["--team=${trialParameters.team}", "--note=${trialParameters.note}"], doc)
    doc["spec"]["trialTemplate"]["trialSpec"]["metadata"] = {"labels": {"team": "vision"}, "annotations": {"n": "1"}}
    assert errors_of(doc) == ["spec.trialTemplate.trialParameters[1].reference: the trial template's metadata.labels "
                              "has no key 'tema' (got '${trialSpec.Labels[tema]}')"]
    doc["spec"]["trialTemplate"]["trialParameters"][1]["reference"] = "${trialSpec.Labels[team]}"
    admit(doc)


def test_a_prometheus_port_written_as_a_string_of_digits_is_katibs_int_or_string():
    """validator.go reads httpGet.port with strconv.Atoi(Port.String()): "9090" is a port."""
    doc = with_spec("spec.metricsCollectorSpec", {"collector": {"kind": "PrometheusMetric"},
                                                  "source": {"httpGet": {"port": "9090", "path": "/metrics"}}})
    admit(doc)


def test_a_range_too_wide_for_a_number_is_refused():
    """min -1e308, max 1e308 overflowed (random search proposed 1e308 every time, a grid's
    count raised); an int past Go's int64 overflowed the grid's count (a 500)."""
    wide = with_spec("spec.parameters.0.feasibleSpace", {"min": "-1e308", "max": "1e308"})
    assert errors_of(wide) == ["spec.parameters[0].feasibleSpace.max: max - min must be a finite number "
                               "(got 1e308 - -1e308)"]
    big = with_spec("spec.parameters.0", {"name": "x", "parameterType": "int",
                                          "feasibleSpace": {"min": "-99999999999999999999", "max": "3"}})
    assert errors_of(big) == ["spec.parameters[0].feasibleSpace.min: must be a 64-bit integer, within "
                              "±9223372036854775807 (got -99999999999999999999)"]
    admit(with_spec("spec.parameters.0", {"name": "x", "parameterType": "int",
                                          "feasibleSpace": {"min": str(-2**63 + 1), "max": str(2**63 - 1)}}))


def test_a_document_holds_at_most_100000_values():
    """A flat 1 MiB YAML list of half a million numbers took 17 s of CPU and 390 MB to load
    (four at once held a server at 1.5 GB for 90 s); it is counted from the parser's events
    now and refused before anything is built. JSON is counted the same way."""
    import time

    from katib.spec import load_json

    many = "[" + ",".join(["1"] * 100_001) + "]"
    for load, what in ((load_documents, "YAML"), (load_json, "JSON")):
        started = time.process_time()
        with pytest.raises(ValidationError) as info:
            load(many)
        assert f"invalid {what}: a document holds more than 100000 values" in str(info.value.errors[0])
        assert time.process_time() - started < 1.0
    assert load_documents("[" + ",".join(["1"] * 99_999) + "]") == [[1] * 99_999]
    # a mapping's keys count: 50,001 keys and their values
    keys = "{" + ",".join(f'"k{i}": 1' for i in range(50_001)) + "}"
    for load in (load_documents, load_json):
        with pytest.raises(ValidationError, match="holds more than 100000 values"):
            load(keys)


def test_yaml_is_loaded_by_libyaml_with_every_bound_kept():
    """The C loader keeps the pure-Python one's checks: duplicate keys, alias bombs,
    self-reference, depth, Python tags; merges still work."""
    cases = {
        "a: 1\na: 2\n": "duplicate key 'a'",
        "a: &a [*a]\n": "an alias refers to a node that contains it",
        "[" * 65 + "]" * 65: "nests deeper than 64 levels",
        "[" * 100_000: "nests deeper than 64 levels",
        "a: !!python/object:os.system x\n": "could not determine a constructor",
        "a: &a [" + ",".join(["x"] * 10) + "]\n" + "".join(
            f"{n}: &{n} [" + ",".join([f"*{p}"] * 10) + "]\n" for p, n in zip("abcd", "bcde", strict=True)): "aliases expand to more than",
    }
    for text, message in cases.items():
        with pytest.raises(ValidationError) as info:
            load_documents(text)
        assert message in str(info.value.errors[0]), (text[:40], info.value.errors)
    assert load_documents("[" * 64 + "]" * 64)
    assert load_documents("a: &a {x: 1}\nb:\n  <<: *a\n  y: 2\n") == [{"a": {"x": 1}, "b": {"x": 1, "y": 2}}]


def test_aliases_of_a_long_string_count_its_length():
    """A scalar counted as one node whatever its length: 2,000 aliases of a 500 KB string
    were under the node budget, and a 500 KB body was answered with a gigabyte (a stored
    spec of 200 MB, served whole on every read)."""
    big = "x" * 500_000
    text = f"a: &x {big}\nb: [" + ", ".join(["*x"] * 2000) + "]\n"
    with pytest.raises(ValidationError) as info:
        load_documents(text)
    assert "aliases expand to more than 1048576 characters of text" in str(info.value.errors[0])
    assert load_documents(f"a: &x {'y' * 1000}\nb: [*x, *x]\n") == [{"a": "y" * 1000, "b": ["y" * 1000] * 2}]


def test_an_integer_past_a_doubles_range_is_named_not_a_500():
    """float(int('1' + '0' * 400)) raised OverflowError out of admission."""
    huge = "1" + "0" * 400
    doc = with_spec("spec.parameters.0", {"name": "x", "parameterType": "int", "feasibleSpace": {"min": "0", "max": huge}})
    assert errors_of(doc) == [f"spec.parameters[0].feasibleSpace.max: must be a 64-bit integer, within "
                              f"±9223372036854775807 (got {huge})"]
    doc = with_spec("spec.parameters.0", {"name": "x", "parameterType": "int",
                                          "feasibleSpace": {"min": "0", "max": "10", "step": huge}})
    assert errors_of(doc) == [f"spec.parameters[0].feasibleSpace.step: must be an integer (got {huge!r})"]


def test_a_template_that_renders_past_its_bound_is_refused_naming_it():
    """A 500 KB annotation (or list value) in thousands of placeholders rendered a spec of
    gigabytes from a request under 1 MiB, at admission and again at each trial's launch."""
    from katib.controller import admit
    from tests.conftest import experiment

    def doc(reference: str, value_list: list[str] | None = None) -> dict:
        d = experiment()
        job = d["spec"]["trialTemplate"]["trialSpec"]
        job.setdefault("metadata", {})["annotations"] = {"big": "a" * 100_000}
        job["spec"]["template"]["spec"]["containers"][0]["args"] = ["${trialParameters.b}"] * 20
        d["spec"]["trialTemplate"]["trialParameters"].append({"name": "b", "reference": reference})
        if value_list:
            d["spec"]["parameters"].append({"name": "y", "parameterType": "categorical",
                                            "feasibleSpace": {"list": value_list}})
        return d

    for bad in (doc("${trialSpec.Annotations[big]}"), doc("y", ["short", "z" * 100_000])):
        with pytest.raises(ValidationError) as info:
            admit(bad)
        assert "spec.trialTemplate.trialSpec" in str(info.value) and "would grow by more than" in str(info.value)
    admit(doc("y", ["short", "z" * 1000]))  # 20 KB: fine


def test_a_goal_of_true_is_refused_not_read_as_one():
    """pydantic's lax float read ``goal: true`` as a goal of 1.0, stored as such."""
    from katib.controller import admit
    from tests.conftest import experiment

    doc = experiment()
    doc["spec"]["objective"]["goal"] = True
    with pytest.raises(ValidationError, match=r"spec.objective.goal: must be a number \(got True\)"):
        admit(doc)
    doc["spec"]["objective"]["goal"] = 0.5
    assert admit(doc).spec.objective.goal == 0.5
