"""What a run cannot survive is refused at admission (issue 19, hardening): each bad document
names the field path and the rule, and each valid one Kubernetes accepts is still admitted."""

from __future__ import annotations

import copy
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from katib.errors import ValidationError
from katib.spec import Limits, admit, parse_quantity
from tests.conftest import experiment

TRIAL_SPEC = "spec.trialTemplate.trialSpec"
POD = f"{TRIAL_SPEC}.spec.template.spec"
CONTAINER = f"{POD}.containers.0"
CONTAINER_PATH = f"{POD}.containers[0]"
FS = "spec.parameters.0.feasibleSpace"
ENV_VARS = ("KATIB_MAX_PARALLEL_TRIALS", "KATIB_MAX_TRIALS", "KATIB_MAX_REPLICAS", "KATIB_MAX_LIST_VALUES",
            "KATIB_MAX_PARAMETERS", "KATIB_MAX_NAS_LAYERS")


@pytest.fixture(autouse=True)
def _default_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)


def tweak(path: str, value: Any, doc: dict[str, Any] | None = None) -> dict[str, Any]:
    """The base experiment (or ``doc``) with the dotted ``path`` set; list indexes are digits."""
    doc = copy.deepcopy(doc or experiment())
    parts = path.split(".")
    node: Any = doc
    for part in parts[:-1]:
        node = node[int(part)] if part.isdigit() else node.setdefault(part, {})
    last = parts[-1]
    if last.isdigit():
        node[int(last)] = value
    else:
        node[last] = value
    return doc


def pytorchjob(worker: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    """The base experiment whose trials are PyTorchJobs with a master and ``worker``."""
    doc = experiment()
    container = copy.deepcopy(doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0])
    replica = {"replicas": 1, "restartPolicy": "OnFailure", "template": {"spec": {"containers": [container]}}}
    doc["spec"]["trialTemplate"]["trialSpec"] = {
        "apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob",
        "spec": {"pytorchReplicaSpecs": {"Master": replica, "Worker": {**copy.deepcopy(replica), **(worker or {})}},
                 **spec}}
    return doc


def nas(num_layers: Any) -> dict[str, Any]:
    doc = experiment()
    del doc["spec"]["parameters"]
    doc["spec"]["algorithm"] = {"algorithmName": "enas"}
    doc["spec"]["nasConfig"] = {
        "graphConfig": {"numLayers": num_layers, "inputSizes": [32, 32, 3], "outputSizes": [10]},
        "operations": [{"operationType": "convolution", "parameters": [
            {"name": "filter_size", "parameterType": "categorical", "feasibleSpace": {"list": ["3", "5"]}}]}]}
    doc["spec"]["trialTemplate"]["trialParameters"] = [{"name": "x", "reference": "architecture"}]
    return doc


def many_parameters(n: int) -> dict[str, Any]:
    params = [{"name": f"p{i}", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "2"}} for i in range(n)]
    params[0] = experiment()["spec"]["parameters"][0]
    doc = tweak("spec.parameters", params)
    # each one reaches the trial, as every searched parameter must
    tt = doc["spec"]["trialTemplate"]
    tt["trialParameters"] += [{"name": f"p{i}", "reference": f"p{i}"} for i in range(1, n)]
    tt["trialSpec"]["spec"]["template"]["spec"]["containers"][0]["args"] = [f"${{trialParameters.p{i}}}" for i in range(1, n)]
    return doc


Tweak = Callable[[], dict[str, Any]]

# (what is wrong, the document, the field path, a phrase of the message)
REFUSED: list[tuple[str, Tweak, str, str]] = [
    # 1. a Job's deadline
    ("deadline -1", lambda: tweak(f"{TRIAL_SPEC}.spec.activeDeadlineSeconds", -1),
     f"{TRIAL_SPEC}.spec.activeDeadlineSeconds", "must be a positive integer (got -1)"),
    ("deadline 0", lambda: tweak(f"{TRIAL_SPEC}.spec.activeDeadlineSeconds", 0),
     f"{TRIAL_SPEC}.spec.activeDeadlineSeconds", "must be a positive integer (got 0)"),
    ("deadline soon", lambda: tweak(f"{TRIAL_SPEC}.spec.activeDeadlineSeconds", "soon"),
     f"{TRIAL_SPEC}.spec.activeDeadlineSeconds", "must be an integer (got 'soon')"),
    ("deadline 2.5", lambda: tweak(f"{TRIAL_SPEC}.spec.activeDeadlineSeconds", 2.5),
     f"{TRIAL_SPEC}.spec.activeDeadlineSeconds", "must be an integer (got 2.5)"),
    ("deadline true", lambda: tweak(f"{TRIAL_SPEC}.spec.activeDeadlineSeconds", True),
     f"{TRIAL_SPEC}.spec.activeDeadlineSeconds", "must be an integer (got True)"),
    ("pod deadline", lambda: tweak(f"{POD}.activeDeadlineSeconds", -5),
     f"{POD}.activeDeadlineSeconds", "must be a positive integer"),
    ("runPolicy deadline", lambda: pytorchjob(runPolicy={"activeDeadlineSeconds": "later"}),
     f"{TRIAL_SPEC}.spec.runPolicy.activeDeadlineSeconds", "must be an integer (got 'later')"),
    # 2. resources
    ("negative cpu", lambda: tweak(f"{CONTAINER}.resources", {"limits": {"cpu": "-100"}}),
     f"{CONTAINER_PATH}.resources.limits.cpu", "must not be negative (got '-100')"),
    ("negative cpu number", lambda: tweak(f"{CONTAINER}.resources", {"requests": {"cpu": -1}}),
     f"{CONTAINER_PATH}.resources.requests.cpu", "must not be negative (got -1)"),
    ("memory lots", lambda: tweak(f"{CONTAINER}.resources", {"requests": {"memory": "lots"}}),
     f"{CONTAINER_PATH}.resources.requests.memory", "must be a Kubernetes quantity such as 500m, 1.5Gi or 129e6 (got 'lots')"),
    ("memory 1Gb", lambda: tweak(f"{CONTAINER}.resources", {"limits": {"memory": "1Gb"}}),
     f"{CONTAINER_PATH}.resources.limits.memory", "must be a Kubernetes quantity"),
    ("memory 1ki", lambda: tweak(f"{CONTAINER}.resources", {"limits": {"memory": "1ki"}}),
     f"{CONTAINER_PATH}.resources.limits.memory", "must be a Kubernetes quantity"),
    ("memory NaN", lambda: tweak(f"{CONTAINER}.resources", {"limits": {"memory": "NaN"}}),
     f"{CONTAINER_PATH}.resources.limits.memory", "must be a Kubernetes quantity"),
    ("memory empty", lambda: tweak(f"{CONTAINER}.resources", {"limits": {"memory": ""}}),
     f"{CONTAINER_PATH}.resources.limits.memory", "must be a Kubernetes quantity"),
    ("memory 1e3Ki", lambda: tweak(f"{CONTAINER}.resources", {"limits": {"memory": "1e3Ki"}}),
     f"{CONTAINER_PATH}.resources.limits.memory", "must be a Kubernetes quantity"),
    ("cpu true", lambda: tweak(f"{CONTAINER}.resources", {"limits": {"cpu": True}}),
     f"{CONTAINER_PATH}.resources.limits.cpu", "must be a Kubernetes quantity"),
    ("gpu -1", lambda: tweak(f"{CONTAINER}.resources", {"limits": {"nvidia.com/gpu": -1}}),
     f"{CONTAINER_PATH}.resources.limits.nvidia.com/gpu", "must be a non-negative integer (got -1)"),
    ("gpu 1.5", lambda: tweak(f"{CONTAINER}.resources", {"limits": {"nvidia.com/gpu": "1.5"}}),
     f"{CONTAINER_PATH}.resources.limits.nvidia.com/gpu", "must be a non-negative integer (got '1.5')"),
    ("gpu 500m", lambda: tweak(f"{CONTAINER}.resources", {"requests": {"nvidia.com/gpu": "500m"}}),
     f"{CONTAINER_PATH}.resources.requests.nvidia.com/gpu", "must be a non-negative integer"),
    ("resources a string", lambda: tweak(f"{CONTAINER}.resources", "big"),
     f"{CONTAINER_PATH}.resources", "must be a mapping with requests and limits"),
    ("limits a list", lambda: tweak(f"{CONTAINER}.resources", {"limits": ["1"]}),
     f"{CONTAINER_PATH}.resources.limits", "must be a mapping of resource names to quantities"),
    ("worker's memory", lambda: pytorchjob({"template": {"spec": {"containers": [
        {"name": "main", "image": "x", "command": ["x"], "resources": {"limits": {"memory": "lots"}}}]}}}),
     f"{TRIAL_SPEC}.spec.pytorchReplicaSpecs.Worker.template.spec.containers[0].resources.limits.memory",
     "must be a Kubernetes quantity"),
    # 3. env
    ("env mapping", lambda: tweak(f"{CONTAINER}.env", {"A": "b"}),
     f"{CONTAINER_PATH}.env", "must be a list of {name, value}"),
    ("env item no name", lambda: tweak(f"{CONTAINER}.env", [{"value": "b"}]),
     f"{CONTAINER_PATH}.env[0].name", "is required"),
    ("env item a string", lambda: tweak(f"{CONTAINER}.env", ["A=b"]),
     f"{CONTAINER_PATH}.env[0]", "must be a mapping with name and value"),
    ("env value a number", lambda: tweak(f"{CONTAINER}.env", [{"name": "A", "value": 1}]),
     f"{CONTAINER_PATH}.env[0].value", "must be a string (got 1); quote it in YAML"),
    ("env name a number", lambda: tweak(f"{CONTAINER}.env", [{"name": 7, "value": "1"}]),
     f"{CONTAINER_PATH}.env[0].name", "must be a string (got 7)"),
    # 4. bounds
    ("parallel 1001", lambda: experiment(parallelTrialCount=1001, maxTrialCount=5000),
     "spec.parallelTrialCount", "must be at most 1000 (the server's limit; raise it with KATIB_MAX_PARALLEL_TRIALS)"),
    ("parallel 10^30", lambda: experiment(parallelTrialCount=10**30, maxTrialCount=None),
     "spec.parallelTrialCount", "must be at most 1000 (the server's limit; raise it with KATIB_MAX_PARALLEL_TRIALS)"),
    ("max trials 10^30", lambda: experiment(maxTrialCount=10**30),
     "spec.maxTrialCount", "must be at most 10000000 (the server's limit; raise it with KATIB_MAX_TRIALS)"),
    ("max failed 10^30", lambda: experiment(maxTrialCount=None, maxFailedTrialCount=10**30),
     "spec.maxFailedTrialCount", "must be at most 10000000 (the server's limit; raise it with KATIB_MAX_TRIALS)"),
    ("1000 workers", lambda: pytorchjob({"replicas": 1000}),
     f"{TRIAL_SPEC}.spec.pytorchReplicaSpecs.Worker.replicas",
     "must be at most 64 (the server's limit; raise it with KATIB_MAX_REPLICAS)"),
    ("replicas -1", lambda: pytorchjob({"replicas": -1}),
     f"{TRIAL_SPEC}.spec.pytorchReplicaSpecs.Worker.replicas", "must be a non-negative integer (got -1)"),
    ("replicas many", lambda: pytorchjob({"replicas": "many"}),
     f"{TRIAL_SPEC}.spec.pytorchReplicaSpecs.Worker.replicas", "must be a non-negative integer (got 'many')"),
    ("job parallelism", lambda: tweak(f"{TRIAL_SPEC}.spec.parallelism", 1000),
     f"{TRIAL_SPEC}.spec.parallelism", "must be at most 64 (the server's limit; raise it with KATIB_MAX_REPLICAS)"),
    ("job completions", lambda: tweak(f"{TRIAL_SPEC}.spec.completions", 65),
     f"{TRIAL_SPEC}.spec.completions", "must be at most 64"),
    ("categorical 10001", lambda: tweak("spec.parameters.0", {
        "name": "x", "parameterType": "categorical", "feasibleSpace": {"list": [str(i) for i in range(10_001)]}}),
     f"{FS.replace('.0.', '[0].')}.list",
     "must have at most 10000 values, not 10001 (the server's limit; raise it with KATIB_MAX_LIST_VALUES)"),
    ("1001 parameters", lambda: many_parameters(1001),
     "spec.parameters", "must have at most 1000 parameters, not 1001 (the server's limit; raise it with KATIB_MAX_PARAMETERS)"),
    ("metric name 256", lambda: tweak("spec.objective.objectiveMetricName", "m" * 256),
     "spec.objective.objectiveMetricName", "must be at most 255 characters (got 256)"),
    ("additional metric 256", lambda: tweak("spec.objective.additionalMetricNames", ["m" * 256]),
     "spec.objective.additionalMetricNames[0]", "must be at most 255 characters (got 256)"),
    ("numLayers 10^6", lambda: nas(10**6),
     "spec.nasConfig.graphConfig.numLayers", "must be at most 256 (the server's limit; raise it with KATIB_MAX_NAS_LAYERS)"),
    ("prometheus port", lambda: tweak("spec.metricsCollectorSpec", {
        "collector": {"kind": "PrometheusMetric"}, "source": {"httpGet": {"port": 70000, "path": "/metrics"}}}),
     "spec.metricsCollectorSpec.source.httpGet.port", "must be a port number from 1 to 65535 (got 70000)"),
    # the endpoint is fetched by katib: an HTTP(S) endpoint and nothing else
    ("prometheus file scheme", lambda: tweak("spec.metricsCollectorSpec", {
        "collector": {"kind": "PrometheusMetric"}, "source": {"httpGet": {"scheme": "FILE", "port": 8080, "path": "/metrics"}}}),
     "spec.metricsCollectorSpec.source.httpGet.scheme", "must be HTTP or HTTPS (got 'FILE')"),
    ("prometheus host with a path", lambda: tweak("spec.metricsCollectorSpec", {
        "collector": {"kind": "PrometheusMetric"},
        "source": {"httpGet": {"host": "localhost/etc/passwd#", "port": 8080, "path": "/metrics"}}}),
     "spec.metricsCollectorSpec.source.httpGet.host", "must be a DNS name or an IP address (got 'localhost/etc/passwd#')"),
    ("prometheus host with userinfo", lambda: tweak("spec.metricsCollectorSpec", {
        "collector": {"kind": "PrometheusMetric"}, "source": {"httpGet": {"host": "a@b", "port": 8080, "path": "/m"}}}),
     "spec.metricsCollectorSpec.source.httpGet.host", "must be a DNS name or an IP address"),
    ("prometheus path ..", lambda: tweak("spec.metricsCollectorSpec", {
        "collector": {"kind": "PrometheusMetric"}, "source": {"httpGet": {"port": 8080, "path": "/../../secrets"}}}),
     "spec.metricsCollectorSpec.source.httpGet.path", "must be a URL path with no '..' segment"),
    ("prometheus path %2e%2e", lambda: tweak("spec.metricsCollectorSpec", {
        "collector": {"kind": "PrometheusMetric"}, "source": {"httpGet": {"port": 8080, "path": "/%2e%2e/%2E%2e/secrets"}}}),
     "spec.metricsCollectorSpec.source.httpGet.path", "must be a URL path with no '..' segment"),
    # 5. NUL bytes
    ("NUL categorical", lambda: tweak("spec.parameters.0", {
        "name": "x", "parameterType": "categorical", "feasibleSpace": {"list": ["a", "b\x00c"]}}),
     "spec.parameters[0].feasibleSpace.list[1]", "must not contain a NUL byte (\\x00)"),
    ("NUL env value", lambda: tweak(f"{CONTAINER}.env", [{"name": "A", "value": "x\x00"}]),
     f"{CONTAINER_PATH}.env[0].value", "must not contain a NUL byte"),
    ("NUL command", lambda: tweak(f"{CONTAINER}.command", ["python3", "-c\x00", "print('loss=${trialParameters.x}')"]),
     f"{CONTAINER_PATH}.command[1]", "must not contain a NUL byte"),
    ("NUL label key", lambda: tweak(f"{TRIAL_SPEC}.metadata", {"labels": {"a\x00": "b"}}),
     f"{TRIAL_SPEC}.metadata.labels", "must not contain a NUL byte in a key ('a\\x00')"),
    ("NUL annotation", lambda: tweak("metadata.annotations", {"note": "\x00"}),
     "metadata.annotations.note", "must not contain a NUL byte"),
    ("NUL metric", lambda: tweak("spec.objective.objectiveMetricName", "lo\x00ss"),
     "spec.objective.objectiveMetricName", "must not contain a NUL byte"),
    ("NUL parameter name", lambda: tweak("spec.parameters.0.name", "x\x00"),
     "spec.parameters[0].name", "must not contain a NUL byte"),
    # 6. namespace and name: one rule (katib.names)
    ("namespace Team_A", lambda: tweak("metadata.namespace", "Team_A"),
     "metadata.namespace", "must consist of lower case letters, digits and '-'"),
    ("namespace ..", lambda: tweak("metadata.namespace", ".."),
     "metadata.namespace", "must consist of lower case letters"),
    ("namespace 64", lambda: tweak("metadata.namespace", "a" * 64),
     "metadata.namespace", "must be at most 63 characters (got 64)"),
    ("name digit first", lambda: tweak("metadata.name", "1demo"),
     "metadata.name", "must consist of lower case letters, digits and '-', starting with a letter"),
    ("name 41", lambda: tweak("metadata.name", "a" * 41), "metadata.name", "must be at most 40 characters (got 41)"),
    ("name empty", lambda: tweak("metadata.name", ""), "metadata.name", "is required"),
    # 7. counts: booleans and fractions are not counts
    ("max trials true", lambda: experiment(maxTrialCount=True), "spec.maxTrialCount", "must be an integer (got True)"),
    ("parallel false", lambda: experiment(parallelTrialCount=False), "spec.parallelTrialCount", "must be an integer (got False)"),
    ("max failed true", lambda: experiment(maxFailedTrialCount=True), "spec.maxFailedTrialCount", "must be an integer (got True)"),
    ("parallel 2.5", lambda: experiment(parallelTrialCount=2.5), "spec.parallelTrialCount", "valid integer"),
    ("numLayers true", lambda: nas(True), "spec.nasConfig.graphConfig.numLayers", "must be an integer (got True)"),
]

ADMITTED: list[tuple[str, Tweak]] = [
    ("deadline 60", lambda: tweak(f"{TRIAL_SPEC}.spec.activeDeadlineSeconds", 60)),
    ("deadline placeholder", lambda: tweak(f"{TRIAL_SPEC}.spec.activeDeadlineSeconds", "${trialParameters.x}")),
    *[(f"quantity {q!r}", (lambda q=q: tweak(f"{CONTAINER}.resources", {"requests": {"cpu": q, "memory": q}})))
      for q in ("129e6", "2Pi", "500m", "1.5Gi", "1E", "100k", "1", 0.5, 2, "+1", ".5", "1.", "12E-3", "1n", "5u", "0")],
    ("quantity placeholder", lambda: tweak(f"{CONTAINER}.resources", {"limits": {"memory": "${trialParameters.x}Gi"}})),
    ("gpus", lambda: tweak(f"{CONTAINER}.resources", {"limits": {"nvidia.com/gpu": 2}, "requests": {"nvidia.com/gpu": "0"}})),
    ("env list", lambda: tweak(f"{CONTAINER}.env", [
        {"name": "A", "value": "1"}, {"name": "B"}, {"name": "C", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}])),
    ("parallel 1000", lambda: experiment(parallelTrialCount=1000, maxTrialCount=10_000_000)),
    ("64 workers", lambda: pytorchjob({"replicas": 64})),
    ("categorical 10000", lambda: tweak("spec.parameters.0", {
        "name": "x", "parameterType": "categorical", "feasibleSpace": {"list": [str(i) for i in range(10_000)]}})),
    ("1000 parameters", lambda: many_parameters(1000)),
    ("metric name 255", lambda: tweak("spec.objective.objectiveMetricName", "m" * 255)),
    ("numLayers 256", lambda: nas(256)),
    ("namespace", lambda: tweak("metadata.namespace", "team-a")),
    ("no namespace", lambda: tweak("metadata.namespace", None)),
    ("integral float count", lambda: experiment(maxTrialCount=4.0)),
    *[(f"prometheus endpoint {http}", (lambda http=http: tweak("spec.metricsCollectorSpec", {
        "collector": {"kind": "PrometheusMetric"}, "source": {"httpGet": http}})))
      for http in ({"scheme": "HTTPS", "host": "trainer-0.trainer.team-a.svc.cluster.local", "port": 9090, "path": "/metrics"},
                   {"scheme": "http", "host": "::1", "port": 8080, "path": "/metrics?format=text"},
                   {"host": "10.0.0.7", "port": 8080, "path": "/"}, {"port": 8080})],
]


def errors_of(doc: dict[str, Any]) -> list[str]:
    with pytest.raises(ValidationError) as info:
        admit(doc)
    return [str(e) for e in info.value.errors]


@pytest.mark.parametrize(("doc", "path", "phrase"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_refused(doc: Tweak, path: str, phrase: str) -> None:
    errors = errors_of(doc())
    assert any(e.startswith(f"{path}: ") and phrase in e for e in errors), errors


@pytest.mark.parametrize("doc", [c[1] for c in ADMITTED], ids=[c[0] for c in ADMITTED])
def test_admitted(doc: Tweak) -> None:
    admit(doc())


def test_an_operator_raises_a_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    doc = experiment(parallelTrialCount=1001, maxTrialCount=5000)
    monkeypatch.setenv("KATIB_MAX_PARALLEL_TRIALS", "2000")
    admit(doc)
    assert Limits.from_env().parallel_trials == 2000
    monkeypatch.setenv("KATIB_MAX_PARALLEL_TRIALS", "10")
    assert any(e.startswith("spec.parallelTrialCount: must be at most 10 ") for e in errors_of(doc))


@pytest.mark.parametrize("value", ["many", "0", "-3", ""])
def test_a_bad_limit_names_its_variable(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("KATIB_MAX_REPLICAS", value)
    with pytest.raises(ValueError, match="KATIB_MAX_REPLICAS must be a positive integer"):
        Limits.from_env()


def test_limits_are_frozen() -> None:
    with pytest.raises(AttributeError):
        Limits().parallel_trials = 5  # type: ignore[misc]


def test_string_bounds_are_the_store_columns() -> None:
    """The metric name bound is the store's column; a longer name would fail on PostgreSQL."""
    from katib.spec._limits import METRIC_NAME_MAX
    from katib.store._schema import experiments, observations

    assert observations.c.metric_name.type.length == METRIC_NAME_MAX
    # Namespaces and experiment names (katib.names) fit their columns with room to spare.
    from katib.names import EXPERIMENT_MAX, LABEL_MAX

    assert experiments.c.name.type.length >= EXPERIMENT_MAX
    assert experiments.c.namespace.type.length >= LABEL_MAX


def test_all_errors_together() -> None:
    doc = tweak(f"{CONTAINER}.env", {"A": "b"}, experiment(parallelTrialCount=10**30, maxTrialCount=None))
    doc = tweak(f"{TRIAL_SPEC}.spec.activeDeadlineSeconds", -1, doc)
    paths = {e.split(": ")[0] for e in errors_of(doc)}
    assert {"spec.parallelTrialCount", f"{CONTAINER_PATH}.env", f"{TRIAL_SPEC}.spec.activeDeadlineSeconds"} <= paths


# The quantity grammar of Kubernetes (k8s.io/apimachinery resource.ParseQuantity), with the
# values kubernetes.utils.parse_quantity gives.
@pytest.mark.parametrize(("text", "value"), [
    ("129e6", Decimal(129_000_000)), ("2Pi", Decimal(2 * 2**50)), ("500m", Decimal("0.5")),
    ("1.5Gi", Decimal(3 * 2**29)), ("1E", Decimal(10**18)), ("100k", Decimal(100_000)), ("1Ki", Decimal(1024)),
    ("12E-3", Decimal("0.012")), ("1n", Decimal("1e-9")), ("5u", Decimal("5e-6")), ("-100", Decimal(-100)),
    ("+2", Decimal(2)), (".5", Decimal("0.5")), ("1.", Decimal(1)), (3, Decimal(3)), (0.25, Decimal("0.25")),
    ("7Ei", Decimal(7 * 2**60)),
])
def test_parse_quantity(text: Any, value: Decimal) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", ["lots", "", "1Gb", "1ki", "1e3Ki", "NaN", "inf", "1_000", " 1", "1 ", "1e", "1.2.3",
                                  "--1", ".", "Ki", "1K", True, None, [1], float("nan"), "1e99999999999999999999"])
def test_parse_quantity_refuses(text: Any) -> None:
    with pytest.raises(ValueError):
        parse_quantity(text)


def test_huge_quantities_are_capped_not_expanded() -> None:
    """Kubernetes caps a quantity at 2^63-1; parsing must not build a number with a million digits."""
    assert parse_quantity("1e999999") == Decimal(2**63 - 1)
    assert parse_quantity("-1e999999") == Decimal(-(2**63 - 1))
