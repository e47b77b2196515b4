"""Katib's defaulting webhook, as a pure function (reference §3)."""

from __future__ import annotations

from ._models import (
    API_VERSION,
    CollectorSpec,
    Experiment,
    FileSystemPath,
    MetricsCollectorSpec,
    MetricStrategy,
    SourceSpec,
)
from ._template import (
    JOB_FAILURE,
    JOB_SUCCESS,
    KUBEFLOW_FAILURE,
    KUBEFLOW_JOB_KINDS,
    KUBEFLOW_PRIMARY_POD_LABELS,
    KUBEFLOW_SUCCESS,
    TRAINJOB_KIND,
    TRAINJOB_PRIMARY_POD_LABELS,
)

DEFAULT_PARALLEL_TRIAL_COUNT = 3
DEFAULT_RESUME_POLICY = "Never"
DEFAULT_NAMESPACE = "default"
DEFAULT_METRICS_FILE = "/var/log/katib/metrics.log"
DEFAULT_TFEVENT_DIR = "/var/log/katib/tfevent/"


def apply_defaults(experiment: Experiment) -> Experiment:
    """A copy of ``experiment`` with every default Katib's webhook would set."""
    exp = experiment.model_copy(deep=True)
    exp.api_version = exp.api_version or API_VERSION
    exp.kind = exp.kind or "Experiment"
    exp.metadata.namespace = exp.metadata.namespace or DEFAULT_NAMESPACE
    spec = exp.spec
    if spec.parallel_trial_count is None:
        spec.parallel_trial_count = DEFAULT_PARALLEL_TRIAL_COUNT
    if not spec.resume_policy:
        spec.resume_policy = DEFAULT_RESUME_POLICY
    for param in spec.parameters or []:
        if param.feasible_space is not None and not param.feasible_space.distribution:
            param.feasible_space.distribution = "uniform"
    _default_objective(exp)
    _default_trial_template(exp)
    _default_metrics_collector(exp)
    return exp


def _default_objective(exp: Experiment) -> None:
    obj = exp.spec.objective
    if obj is None or obj.type not in ("minimize", "maximize"):
        return
    strategy = "min" if obj.type == "minimize" else "max"
    # Our extensions: an additional objective follows its own direction, as the objective
    # does; a metric that only a constraint reads is taken as the trial ended with it.
    own = {a.metric_name: {"minimize": "min", "maximize": "max"}[a.type]
           for a in obj.additional_objectives or [] if a.metric_name and a.type in ("minimize", "maximize")}
    bounded = {c.metric_name for c in obj.constraints or []} - {obj.objective_metric_name, *own}
    strategies = list(obj.metric_strategies or [])
    have = {s.name for s in strategies}
    for name in [obj.objective_metric_name, *(obj.additional_metric_names or [])]:
        if name and name not in have:
            value = own.get(name) or ("latest" if name in bounded else strategy)
            strategies.append(MetricStrategy(name=name, value=value))
            have.add(name)
    obj.metric_strategies = strategies


def _default_trial_template(exp: Experiment) -> None:
    tt = exp.spec.trial_template
    if tt is None:
        return
    if tt.config_map is not None and not tt.config_map.config_map_namespace:
        tt.config_map.config_map_namespace = exp.namespace
    if tt.trial_spec is None:
        return
    kind = tt.trial_spec.get("kind")
    api_version = str(tt.trial_spec.get("apiVersion", ""))
    if kind == "Job" and api_version == "batch/v1":
        tt.success_condition = tt.success_condition or JOB_SUCCESS
        tt.failure_condition = tt.failure_condition or JOB_FAILURE
    elif kind in KUBEFLOW_JOB_KINDS:
        tt.success_condition = tt.success_condition or KUBEFLOW_SUCCESS
        tt.failure_condition = tt.failure_condition or KUBEFLOW_FAILURE
        if not tt.primary_pod_labels:  # unset or empty, as Katib's len(...) == 0
            tt.primary_pod_labels = dict(KUBEFLOW_PRIMARY_POD_LABELS)
    elif kind == TRAINJOB_KIND:
        tt.success_condition = tt.success_condition or JOB_SUCCESS
        tt.failure_condition = tt.failure_condition or JOB_FAILURE
        if not tt.primary_pod_labels:
            tt.primary_pod_labels = dict(TRAINJOB_PRIMARY_POD_LABELS)


def _default_metrics_collector(exp: Experiment) -> None:
    spec = exp.spec
    if spec.metrics_collector_spec is None:
        spec.metrics_collector_spec = MetricsCollectorSpec()
    mc = spec.metrics_collector_spec
    if mc.collector is None:
        mc.collector = CollectorSpec()
    if not mc.collector.kind:
        mc.collector.kind = "StdOut"
    kind = mc.collector.kind
    if kind == "File":
        mc.source = mc.source or SourceSpec()
        fsp = mc.source.file_system_path = mc.source.file_system_path or FileSystemPath()
        fsp.path = fsp.path or DEFAULT_METRICS_FILE
        fsp.kind = fsp.kind or "File"
        fsp.format = fsp.format or "TEXT"
    elif kind == "TensorFlowEvent":
        mc.source = mc.source or SourceSpec()
        fsp = mc.source.file_system_path = mc.source.file_system_path or FileSystemPath()
        fsp.path = fsp.path or DEFAULT_TFEVENT_DIR
        fsp.kind = fsp.kind or "Directory"
    elif kind == "PrometheusMetric":
        mc.source = mc.source or SourceSpec()
        http = dict(mc.source.http_get or {})
        if not http.get("path"):
            http["path"] = "/metrics"
        if str(http.get("port") or 0) == "0":  # unset or 0, as Katib's Port.String() == "0"
            http["port"] = 8080
        mc.source.http_get = http
