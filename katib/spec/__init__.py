"""Katib's v1beta1 resources: models, defaults, validation and template rendering.

>>> from katib.spec import admit
>>> exp = admit(yaml.safe_load(open("examples/random.yaml")))  # doctest: +SKIP
>>> exp.spec.parallel_trial_count  # doctest: +SKIP
3
"""

from ._defaults import apply_defaults
from ._gjson import found as condition_found
from ._gjson import holds as condition_holds
from ._gjson import unreadable as condition_unreadable
from ._limits import Limits
from ._load import (
    admit,
    as_written,
    dump_yaml,
    experiment_documents,
    load_documents,
    load_json,
    parse_experiment,
)
from ._models import (
    API_VERSION,
    AlgorithmSetting,
    AlgorithmSpec,
    Condition,
    EarlyStoppingRule,
    EarlyStoppingSpec,
    Experiment,
    ExperimentSpec,
    ExperimentStatus,
    FeasibleSpace,
    KatibModel,
    Metric,
    MetricsCollectorSpec,
    NasConfig,
    ObjectiveSpec,
    ObjectMeta,
    Observation,
    Operation,
    OptimalTrial,
    ParameterAssignment,
    ParameterSpec,
    Suggestion,
    Trial,
    TrialAssignment,
    TrialSpec,
    TrialStatus,
    TrialTemplate,
)
from ._optimizationjob import LIFTED as OPTIMIZATION_JOB_LIFTED
from ._optimizationjob import SOURCE_ANNOTATION as OPTIMIZATION_JOB_SOURCE
from ._optimizationjob import env_name as optimization_env_name
from ._optimizationjob import is_optimization_job
from ._optimizationjob import source_job as optimization_job_of
from ._optimizationjob import source_text as optimization_job_source_text
from ._quantity import parse_quantity
from ._template import (
    EXPERIMENT_LABEL,
    TRAINJOB_KIND,
    TRIAL_LABEL,
    RenderTooLarge,
    TrialMeta,
    find_containers,
    generated_name,
    new_trial_name,
    render,
)
from ._update import EDITABLE, update_errors
from ._validate import nas_config_errors, validate, validate_parameter
from ._validate_template import compile_filter, filter_problem, http_get_errors, port_value
from ._workload import REPLICA_TYPE, count_errors, count_value

__all__ = [
    "condition_found",
    "condition_holds",
    "condition_unreadable",
    "EDITABLE",
    "REPLICA_TYPE",
    "count_errors",
    "count_value",
    "http_get_errors",
    "port_value",
    "update_errors",
    "OPTIMIZATION_JOB_LIFTED",
    "as_written",
    "OPTIMIZATION_JOB_SOURCE",
    "is_optimization_job",
    "optimization_job_of",
    "optimization_job_source_text",
    "optimization_env_name",
    "EXPERIMENT_LABEL",
    "TRAINJOB_KIND",
    "TRIAL_LABEL",
    "API_VERSION",
    "AlgorithmSetting",
    "AlgorithmSpec",
    "Condition",
    "EarlyStoppingSpec",
    "Experiment",
    "ExperimentSpec",
    "ExperimentStatus",
    "FeasibleSpace",
    "Limits",
    "Metric",
    "MetricsCollectorSpec",
    "NasConfig",
    "Operation",
    "ObjectiveSpec",
    "Observation",
    "OptimalTrial",
    "ParameterAssignment",
    "ParameterSpec",
    "Suggestion",
    "Trial",
    "TrialSpec",
    "TrialStatus",
    "EarlyStoppingRule",
    "KatibModel",
    "ObjectMeta",
    "TrialAssignment",
    "TrialMeta",
    "TrialTemplate",
    "admit",
    "apply_defaults",
    "experiment_documents",
    "compile_filter",
    "filter_problem",
    "find_containers",
    "dump_yaml",
    "load_documents",
    "load_json",
    "new_trial_name",
    "parse_experiment",
    "parse_quantity",
    "render",
    "generated_name",
    "RenderTooLarge",
    "validate",
    "nas_config_errors",
    "validate_parameter",
]
