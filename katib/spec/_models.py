"""Pydantic models of Katib's v1beta1 resources, field for field.

Field names are Katib's (camelCase on the wire, snake_case in Python); numbers inside
``feasibleSpace``, settings and metric values are strings, as in Katib. The models are
lenient about *types* (an unquoted ``min: 0.1`` becomes ``"0.1"``) and strict about
*unknown fields* (a typo is an error, as with ``kubectl --validate=strict``); the rules
themselves live in ``_validate.py`` so every broken rule is reported at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

API_VERSION = "kubeflow.org/v1beta1"


def _to_str(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


NumStr = Annotated[str, BeforeValidator(_to_str)]


def _not_bool(value: Any) -> Any:
    # pydantic reads `true` as 1; in a count it is a mistake, not a number.
    if isinstance(value, bool):
        raise PydanticCustomError("int_type", f"must be an integer (got {value!r})")
    return value


Count = Annotated[int, BeforeValidator(_not_bool)]


def _not_bool_number(value: Any) -> Any:
    if isinstance(value, bool):  # pydantic reads `true` as 1.0 (goal: true was a goal of 1)
        raise PydanticCustomError("float_type", f"must be a number (got {value!r})")
    return value


Number = Annotated[float, BeforeValidator(_not_bool_number)]


class KatibModel(BaseModel):
    """Base: camelCase aliases, unknown fields refused, dumps drop unset values."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", validate_assignment=False
    )

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class FeasibleSpace(KatibModel):
    max: NumStr | None = None
    min: NumStr | None = None
    list_: list[NumStr] | None = Field(default=None, alias="list")
    step: NumStr | None = None
    distribution: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _sdk_list_in_distribution(cls, data: Any) -> Any:
        # kubeflow-katib's search.categorical() puts the list into `distribution`.
        if isinstance(data, dict) and isinstance(data.get("distribution"), list):
            data = dict(data)
            values = data.pop("distribution")
            data.setdefault("list", values)
        return data


class ParameterSpec(KatibModel):
    name: str | None = None
    parameter_type: str | None = None
    feasible_space: FeasibleSpace | None = None


class MetricStrategy(KatibModel):
    name: str | None = None
    value: str | None = None


class AdditionalObjective(KatibModel):
    """Extension: one more metric to optimise; the result is then a Pareto front."""

    metric_name: str | None = None
    type: str | None = None


class MetricConstraint(KatibModel):
    """Extension: a trial is feasible only when ``min <= metric <= max``."""

    metric_name: str | None = None
    min: NumStr | None = None
    max: NumStr | None = None


class ObjectiveSpec(KatibModel):
    type: str | None = None
    goal: Number | None = None
    objective_metric_name: str | None = None
    additional_metric_names: list[str] | None = None
    metric_strategies: list[MetricStrategy] | None = None
    # Extensions (not in Katib): several objectives, constraints on metrics.
    additional_objectives: list[AdditionalObjective] | None = None
    constraints: list[MetricConstraint] | None = None


class AlgorithmSetting(KatibModel):
    name: str | None = None
    value: NumStr | None = None


class AlgorithmSpec(KatibModel):
    algorithm_name: str | None = None
    algorithm_settings: list[AlgorithmSetting] | None = None

    def settings(self) -> dict[str, str]:
        return {s.name: s.value or "" for s in self.algorithm_settings or [] if s.name}


class EarlyStoppingSpec(AlgorithmSpec):
    pass


class TrialParameterSpec(KatibModel):
    name: str | None = None
    description: str | None = None
    reference: str | None = None


class ConfigMapSource(KatibModel):
    config_map_name: str | None = None
    config_map_namespace: str | None = None
    template_path: str | None = None


class TrialTemplate(KatibModel):
    retain: bool | None = None
    trial_spec: dict[str, Any] | None = None
    config_map: ConfigMapSource | None = None
    trial_parameters: list[TrialParameterSpec] | None = None
    primary_pod_labels: dict[str, str] | None = None
    primary_container_name: str | None = None
    success_condition: str | None = None
    failure_condition: str | None = None


class FileSystemPath(KatibModel):
    path: str | None = None
    kind: str | None = None
    format: str | None = None


class FilterSpec(KatibModel):
    metrics_format: list[str] | None = None


class SourceSpec(KatibModel):
    http_get: dict[str, Any] | None = None
    file_system_path: FileSystemPath | None = None
    filter: FilterSpec | None = None


class CollectorSpec(KatibModel):
    kind: str | None = None
    custom_collector: dict[str, Any] | None = None


class MetricsCollectorSpec(KatibModel):
    source: SourceSpec | None = None
    collector: CollectorSpec | None = None


class GraphConfig(KatibModel):
    num_layers: Count | None = None
    input_sizes: list[Count] | None = None
    output_sizes: list[Count] | None = None


class Operation(KatibModel):
    operation_type: str | None = None
    parameters: list[ParameterSpec] | None = None


class NasConfig(KatibModel):
    graph_config: GraphConfig | None = None
    operations: list[Operation] | None = None


class WarmStartTrial(KatibModel):
    parameter_assignments: list[ParameterAssignment] | None = None
    observation: Observation | None = None


class WarmStart(KatibModel):
    """Extension: known results that seed the experiment (they use none of its budget)."""

    trials: list[WarmStartTrial] | None = None


class ExperimentSpec(KatibModel):
    parameters: list[ParameterSpec] | None = None
    objective: ObjectiveSpec | None = None
    algorithm: AlgorithmSpec | None = None
    early_stopping: EarlyStoppingSpec | None = None
    parallel_trial_count: Count | None = None
    max_trial_count: Count | None = None
    max_failed_trial_count: Count | None = None
    metrics_collector_spec: MetricsCollectorSpec | None = None
    trial_template: TrialTemplate | None = None
    nas_config: NasConfig | None = None
    resume_policy: str | None = None
    warm_start: WarmStart | None = None  # extension
    # Extension: "local" (default) runs trials from trialTemplate; "external" hands them
    # to an outside loop through ask and tell, and needs no trialTemplate.
    executor: str | None = None


class ObjectMeta(BaseModel):
    """Kubernetes metadata: the fields we use by name, every other one kept as is."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")

    name: str | None = None
    namespace: str | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    uid: str | None = None
    creation_timestamp: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class Condition(KatibModel):
    type: str
    status: str = "True"
    reason: str | None = None
    message: str | None = None
    last_update_time: str | None = None
    last_transition_time: str | None = None


class Metric(KatibModel):
    name: str
    min: str | None = None
    max: str | None = None
    latest: str | None = None


class Observation(KatibModel):
    metrics: list[Metric] = Field(default_factory=list)

    @classmethod
    def of(cls, metrics: Mapping[str, Mapping[str, str]] | None) -> Observation:
        """From reduced metrics by name (``{"loss": {"min": …, "max": …, "latest": …}}``)."""
        return cls(metrics=[Metric(name=name, **values) for name, values in (metrics or {}).items()])

    def by_name(self) -> dict[str, dict[str, str]]:
        """Each metric's reduced values by name: ``{"loss": {"min": …, "max": …, "latest": …}}``."""
        return {m.name: m.model_dump(exclude={"name"}, exclude_none=True) for m in self.metrics}


class ParameterAssignment(KatibModel):
    name: str
    value: NumStr


class OptimalTrial(KatibModel):
    best_trial_name: str | None = None
    parameter_assignments: list[ParameterAssignment] = Field(default_factory=list)
    observation: Observation | None = None

    def metrics(self) -> dict[str, dict[str, str]]:
        """The best trial's reduced metrics by name (empty when there is none)."""
        return self.observation.by_name() if self.observation else {}


class _Status(KatibModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class ExperimentStatus(_Status):
    start_time: str | None = None
    completion_time: str | None = None
    last_reconcile_time: str | None = None
    conditions: list[Condition] = Field(default_factory=list)
    current_optimal_trial: OptimalTrial | None = None
    pareto_front: list[OptimalTrial] | None = None  # extension: several objectives
    pending_trial_list: list[str] | None = None
    running_trial_list: list[str] | None = None
    succeeded_trial_list: list[str] | None = None
    failed_trial_list: list[str] | None = None
    killed_trial_list: list[str] | None = None
    early_stopped_trial_list: list[str] | None = None
    metrics_unavailable_trial_list: list[str] | None = None
    trials: int = 0
    trials_succeeded: int = 0
    trials_failed: int = 0
    trials_killed: int = 0
    trials_pending: int = 0
    trials_running: int = 0
    trials_early_stopped: int = 0
    trial_metrics_unavailable: int = 0

    @property
    def best(self) -> OptimalTrial | None:
        """``currentOptimalTrial`` when it names a trial (None while there is no best)."""
        best = self.current_optimal_trial
        return best if best is not None and best.best_trial_name else None


class Experiment(KatibModel):
    """A Katib ``Experiment`` (``kubeflow.org/v1beta1``)."""

    api_version: str | None = None
    kind: str | None = None
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: ExperimentSpec = Field(default_factory=ExperimentSpec)
    status: ExperimentStatus | None = None

    @property
    def name(self) -> str:
        return self.metadata.name or ""

    @property
    def namespace(self) -> str:
        return self.metadata.namespace or "default"


class EarlyStoppingRule(KatibModel):
    """Katib's ``Trial.spec.earlyStoppingRules`` item: stop once ``name`` is
    ``comparison`` (less, greater, equal) ``value`` from step ``startStep`` on."""

    name: str
    value: str
    comparison: str
    start_step: int | None = None


class TrialSpec(KatibModel):
    objective: ObjectiveSpec | None = None
    parameter_assignments: list[ParameterAssignment] = Field(default_factory=list)
    metrics_collector: MetricsCollectorSpec | None = None
    primary_container_name: str | None = None
    success_condition: str | None = None
    failure_condition: str | None = None
    retain_run: bool | None = None
    labels: dict[str, str] | None = None
    primary_pod_labels: dict[str, str] | None = None
    early_stopping_rules: list[EarlyStoppingRule] | None = None
    run_spec: dict[str, Any] | None = None  # the rendered trial template: free-form, as Kubernetes takes it


class TrialStatus(_Status):
    conditions: list[Condition] = Field(default_factory=list)
    start_time: str | None = None
    completion_time: str | None = None
    last_reconcile_time: str | None = None
    observation: Observation | None = None
    devices: dict[str, Any] | None = None  # extension: what the trial ran on (an executor's own shape)


class Trial(KatibModel):
    """A Katib ``Trial``: one set of parameter assignments and its run."""

    api_version: str = API_VERSION
    kind: str = "Trial"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: TrialSpec = Field(default_factory=TrialSpec)
    status: TrialStatus = Field(default_factory=TrialStatus)


class TrialAssignment(KatibModel):
    name: str | None = None
    parameter_assignments: list[ParameterAssignment] = Field(default_factory=list)
    labels: dict[str, str] | None = None


class SuggestionSpec(KatibModel):
    algorithm: AlgorithmSpec | None = None
    early_stopping: EarlyStoppingSpec | None = None
    requests: int = 0
    resume_policy: str | None = None


class SuggestionStatus(_Status):
    suggestion_count: int = 0
    suggestions: list[TrialAssignment] = Field(default_factory=list)
    conditions: list[Condition] = Field(default_factory=list)
    algorithm_settings: list[AlgorithmSetting] | None = None
    start_time: str | None = None


class Suggestion(KatibModel):
    """A Katib ``Suggestion``: the algorithm's side of an experiment."""

    api_version: str = API_VERSION
    kind: str = "Suggestion"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: SuggestionSpec = Field(default_factory=SuggestionSpec)
    status: SuggestionStatus = Field(default_factory=SuggestionStatus)
