"""Katib's validation rules (reference §4) plus the checks Katib forgets.

``validate(experiment)`` runs on a *defaulted* experiment and returns every broken rule
as a ``FieldError``; it never stops at the first one.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import Any

from katib import names
from katib.errors import FieldError

from ._limits import METRIC_NAME_MAX, Limits, too_long
from ._models import Experiment, NasConfig, ParameterSpec
from ._validate_template import (
    _metrics_collector,
    _trial_template,
)

PARAMETER_TYPES = ("double", "int", "discrete", "categorical")
DISTRIBUTIONS = ("uniform", "logUniform", "normal", "logNormal")
OBJECTIVE_TYPES = ("minimize", "maximize")
STRATEGIES = ("min", "max", "latest")
RESUME_POLICIES = ("Never", "LongRunning", "FromVolume")
# What may change on an existing experiment (Katib's validating webhook).


def validate(
    exp: Experiment,
    known_algorithms: Collection[str] | None = None,
    known_early_stopping: Collection[str] | None = None,
    limits: Limits | None = None,
) -> list[FieldError]:
    """Every rule ``exp`` breaks. ``known_*`` are the registries' names (None: skip);
    ``limits`` the server's bounds (None: the defaults and the operator's environment)."""
    limits = limits or Limits.from_env()
    errors: list[FieldError] = []
    errors += _metadata(exp)
    errors += _counts(exp, limits)
    errors += _objective(exp)
    errors += _algorithms(exp, known_algorithms, known_early_stopping)
    errors += _search_space(exp, limits)
    errors += _trial_template(exp, limits)
    errors += _metrics_collector(exp)
    errors += _extensions(exp)
    errors += nul_errors(exp.model_dump(by_alias=True, exclude_none=True, mode="json"))
    return errors


def nul_errors(obj: Any, path: str = "") -> list[FieldError]:
    """Every string (or mapping key) in ``obj`` holding a NUL byte: PostgreSQL refuses them
    in text, so such a value would fail every write of the run."""
    if isinstance(obj, str):
        return [FieldError(path, "must not contain a NUL byte (\\x00)")] if "\x00" in obj else []
    errors = []
    if isinstance(obj, dict):
        for key, value in obj.items():
            if isinstance(key, str) and "\x00" in key:
                errors.append(FieldError(path, f"must not contain a NUL byte in a key ({key!r})"))
            errors += nul_errors(value, f"{path}.{key}" if path else str(key))
    elif isinstance(obj, list):
        for i, item in enumerate(obj):
            errors += nul_errors(item, f"{path}[{i}]")
    return errors


def _extensions(exp: Experiment) -> list[FieldError]:
    """Our optional fields: several objectives, constraints, warm start."""
    obj = exp.spec.objective
    errors: list[FieldError] = []
    if obj is None:
        return errors
    additional = obj.additional_metric_names or []
    metrics = [obj.objective_metric_name, *additional]
    seen: set[str] = set()
    for i, ao in enumerate(obj.additional_objectives or []):
        path = f"spec.objective.additionalObjectives[{i}]"
        if ao.metric_name not in additional:
            errors.append(FieldError(f"{path}.metricName", f"must be one of additionalMetricNames, so it is collected (got {ao.metric_name!r})"))
        elif ao.metric_name in seen:
            errors.append(FieldError(f"{path}.metricName", f"duplicate objective {ao.metric_name!r}"))
        seen.add(ao.metric_name or "")
        if ao.type not in OBJECTIVE_TYPES:
            errors.append(FieldError(f"{path}.type", f"must be minimize or maximize (got {ao.type!r})"))
    for i, c in enumerate(obj.constraints or []):
        path = f"spec.objective.constraints[{i}]"
        if c.metric_name not in metrics:
            errors.append(FieldError(f"{path}.metricName", f"must be the objective or one of additionalMetricNames (got {c.metric_name!r})"))
        lo, hi = _number(c.min, False), _number(c.max, False)
        if c.min is None and c.max is None:
            errors.append(FieldError(path, "needs min, max or both"))
        for field, raw, value in (("min", c.min, lo), ("max", c.max, hi)):
            if raw is not None and value is None:
                errors.append(FieldError(f"{path}.{field}", f"must be a number (got {raw!r})"))
        if lo is not None and hi is not None and lo > hi:
            errors.append(FieldError(f"{path}.min", f"must be at most max (got {c.min} > {c.max})"))
    if exp.spec.warm_start is not None:
        errors += _warm_start(exp)
    return errors


def _warm_start(exp: Experiment) -> list[FieldError]:
    assert exp.spec.warm_start is not None and exp.spec.objective is not None
    errors: list[FieldError] = []
    params = {p.name: p for p in exp.spec.parameters or [] if p.name}
    objective = exp.spec.objective.objective_metric_name
    for i, t in enumerate(exp.spec.warm_start.trials or []):
        path = f"spec.warmStart.trials[{i}]"
        given = {a.name: a.value for a in t.parameter_assignments or []}
        for name in sorted(set(params) - set(given)):
            errors.append(FieldError(f"{path}.parameterAssignments", f"has no value for parameter {name!r}"))
        for j, a in enumerate(t.parameter_assignments or []):
            p = params.get(a.name)
            apath = f"{path}.parameterAssignments[{j}]"
            if p is None:
                errors.append(FieldError(f"{apath}.name", f"is not a parameter of the experiment (got {a.name!r})"))
                continue
            problem = _outside(p, a.value)
            if problem:
                errors.append(FieldError(f"{apath}.value", problem))
        metrics = t.observation.metrics if t.observation else []
        for k, reported in enumerate(metrics):
            for key in ("latest", "min", "max"):
                value = getattr(reported, key)
                if value is not None and _no_result(value):
                    errors.append(FieldError(f"{path}.observation.metrics[{k}].{key}",
                                             f"must be a finite number or text (got {value!r})"))
        values = {m.name: m for m in metrics}
        m = values.get(objective or "")
        if m is None or all(_number(v, False) is None for v in (m.latest, m.min, m.max)):
            errors.append(FieldError(f"{path}.observation.metrics", f"needs a numeric value of the objective metric {objective!r}"))
    return errors


def _outside(p: ParameterSpec, value: str) -> str | None:
    """Why ``value`` is outside ``p``'s feasible space, or None."""
    fs = p.feasible_space
    if fs is None:
        return None
    if p.parameter_type in ("discrete", "categorical"):
        if value not in (fs.list_ or []):
            return f"must be one of {fs.list_} (got {value!r})"
        return None
    number = _number(value, p.parameter_type == "int")
    if number is None:
        return f"must be {'an integer' if p.parameter_type == 'int' else 'a number'} (got {value!r})"
    lo, hi = _number(fs.min, False), _number(fs.max, False)
    if lo is not None and hi is not None and not lo <= number <= hi:
        return f"must be within [{fs.min}, {fs.max}] (got {value})"
    return None


def _metadata(exp: Experiment) -> list[FieldError]:
    errors = []
    if exp.api_version not in (None, "kubeflow.org/v1beta1"):
        errors.append(FieldError("apiVersion", f"must be kubeflow.org/v1beta1 (got {exp.api_version!r})"))
    if exp.kind not in (None, "Experiment"):
        errors.append(FieldError("kind", f"must be Experiment (got {exp.kind!r})"))
    name = exp.metadata.name
    if not name:
        errors.append(FieldError("metadata.name", "is required"))
    else:
        errors += names.name_errors("experiment", name, "metadata.name")
    if exp.metadata.namespace is not None:  # None: the default namespace
        errors += names.name_errors("namespace", exp.metadata.namespace, "metadata.namespace")
    return errors


def _counts(exp: Experiment, limits: Limits) -> list[FieldError]:
    s = exp.spec
    errors = []
    for field, value, limit in (
        ("parallelTrialCount", s.parallel_trial_count, "parallel_trials"),
        ("maxTrialCount", s.max_trial_count, "trials"),
        ("maxFailedTrialCount", s.max_failed_trial_count, "trials"),
    ):
        problem = limits.exceeded(limit, value) if value is not None else None
        if problem:
            errors.append(FieldError(f"spec.{field}", problem))
    if s.max_failed_trial_count is not None and s.max_failed_trial_count < 0:
        errors.append(FieldError("spec.maxFailedTrialCount", f"must be >= 0 (got {s.max_failed_trial_count})"))
    if s.max_trial_count is not None and s.max_trial_count <= 0:
        errors.append(FieldError("spec.maxTrialCount", f"must be > 0 (got {s.max_trial_count})"))
    if s.parallel_trial_count is not None and s.parallel_trial_count <= 0:
        errors.append(FieldError("spec.parallelTrialCount", f"must be > 0 (got {s.parallel_trial_count})"))
    if s.max_trial_count is not None and s.max_trial_count > 0:
        if s.max_failed_trial_count is not None and s.max_failed_trial_count > s.max_trial_count:
            errors.append(FieldError(
                "spec.maxFailedTrialCount",
                f"must be <= maxTrialCount (got {s.max_failed_trial_count} > {s.max_trial_count})",
            ))
        if s.parallel_trial_count is not None and s.parallel_trial_count > s.max_trial_count:
            errors.append(FieldError(
                "spec.parallelTrialCount",
                f"must be <= maxTrialCount (got {s.parallel_trial_count} > {s.max_trial_count})",
            ))
    if s.resume_policy and s.resume_policy not in RESUME_POLICIES:
        errors.append(FieldError("spec.resumePolicy", f"must be one of {', '.join(RESUME_POLICIES)} (got {s.resume_policy!r})"))
    return errors


def _objective(exp: Experiment) -> list[FieldError]:
    obj = exp.spec.objective
    if obj is None:
        return [FieldError("spec.objective", "is required")]
    errors = []
    if obj.type not in OBJECTIVE_TYPES:
        errors.append(FieldError("spec.objective.type", f"must be minimize or maximize (got {obj.type!r})"))
    if not obj.objective_metric_name:
        errors.append(FieldError("spec.objective.objectiveMetricName", "is required"))
    metrics = [("spec.objective.objectiveMetricName", obj.objective_metric_name)]
    metrics += [(f"spec.objective.additionalMetricNames[{i}]", m) for i, m in enumerate(obj.additional_metric_names or [])]
    for field, metric in metrics:
        problem = too_long(metric or "", METRIC_NAME_MAX, "metric_name")
        if problem:
            errors.append(FieldError(field, problem))
    if obj.objective_metric_name and obj.objective_metric_name in (obj.additional_metric_names or []):
        errors.append(FieldError(
            "spec.objective.additionalMetricNames",
            f"must not contain the objective metric {obj.objective_metric_name!r}",
        ))
    if obj.goal is not None and not math.isfinite(obj.goal):
        errors.append(FieldError("spec.objective.goal", "must be a finite number"))
    for i, ms in enumerate(obj.metric_strategies or []):
        # A strategy for a metric that is not collected is kept and unused, as Katib keeps it.
        path = f"spec.objective.metricStrategies[{i}]"
        if not ms.name:
            errors.append(FieldError(f"{path}.name", "is required"))
        if ms.value not in STRATEGIES:
            errors.append(FieldError(f"{path}.value", f"must be min, max or latest (got {ms.value!r})"))
    return errors


def _algorithms(
    exp: Experiment,
    known: Collection[str] | None,
    known_es: Collection[str] | None,
) -> list[FieldError]:
    errors = []
    alg = exp.spec.algorithm
    if alg is None or not alg.algorithm_name:
        errors.append(FieldError("spec.algorithm.algorithmName", "is required"))
    elif known is not None and alg.algorithm_name not in known:
        errors.append(FieldError(
            "spec.algorithm.algorithmName",
            f"unknown algorithm {alg.algorithm_name!r} (available: {', '.join(sorted(known))})",
        ))
    if alg is not None:
        errors += _settings_names("spec.algorithm.algorithmSettings", alg.algorithm_settings)
    es = exp.spec.early_stopping
    if es is not None:
        if not es.algorithm_name:
            errors.append(FieldError("spec.earlyStopping.algorithmName", "is required when earlyStopping is set"))
        elif known_es is not None and es.algorithm_name not in known_es:
            avail = ", ".join(sorted(known_es)) or "none"
            errors.append(FieldError(
                "spec.earlyStopping.algorithmName",
                f"unknown early stopping algorithm {es.algorithm_name!r} (available: {avail})",
            ))
        errors += _settings_names("spec.earlyStopping.algorithmSettings", es.algorithm_settings)
    return errors


def _settings_names(path: str, settings: list | None) -> list[FieldError]:
    errors, seen = [], set()
    for i, s in enumerate(settings or []):
        if not s.name:
            errors.append(FieldError(f"{path}[{i}].name", "is required"))
        elif s.name in seen:
            errors.append(FieldError(f"{path}[{i}].name", f"duplicate setting {s.name!r}"))
        seen.add(s.name)
    return errors


def _search_space(exp: Experiment, limits: Limits) -> list[FieldError]:
    s = exp.spec
    has_params, has_nas = bool(s.parameters), s.nas_config is not None
    if has_params == has_nas:
        return [FieldError("spec", "exactly one of parameters and nasConfig must be set")]
    if has_nas:
        assert s.nas_config is not None
        return nas_config_errors(s.nas_config, limits=limits)
    errors: list[FieldError] = []
    problem = limits.exceeded("parameters", len(s.parameters or []), "parameters")
    if problem:
        return [FieldError("spec.parameters", problem)]
    seen: set[str] = set()
    for i, p in enumerate(s.parameters or []):
        errors += validate_parameter(p, f"spec.parameters[{i}]", limits)
        if p.name and p.name in seen:
            errors.append(FieldError(f"spec.parameters[{i}].name", f"duplicate parameter name {p.name!r}"))
        seen.add(p.name or "")
    return errors


def nas_config_errors(
    nas: NasConfig, path: str = "spec.nasConfig", limits: Limits | None = None
) -> list[FieldError]:
    """Katib's rules of a ``nasConfig``: the graph's layers, the operations and their parameters."""
    limits = limits or Limits.from_env()
    errors = []
    gc = nas.graph_config
    if gc is None:
        errors.append(FieldError(f"{path}.graphConfig", "is required"))
    elif not gc.num_layers or gc.num_layers <= 0:
        errors.append(FieldError(f"{path}.graphConfig.numLayers", "must be > 0"))
    elif problem := limits.exceeded("nas_layers", gc.num_layers):
        errors.append(FieldError(f"{path}.graphConfig.numLayers", problem))
    if not nas.operations:
        errors.append(FieldError(f"{path}.operations", "must list at least one operation"))
    for i, op in enumerate(nas.operations or []):
        where = f"{path}.operations[{i}]"
        if not op.operation_type:
            errors.append(FieldError(f"{where}.operationType", "is required"))
        for j, p in enumerate(op.parameters or []):
            errors += validate_parameter(p, f"{where}.parameters[{j}]", limits)
    return errors


# An int parameter's bounds: Go's int64, as Katib's services and Kubernetes read integers.
MAX_INT = 2**63 - 1


def _integer(text: str) -> int | None:
    try:
        return int(text)
    except (TypeError, ValueError):  # not an integer, or past Python's 4,300 digits
        return None


def _no_result(text: str) -> bool:
    """Empty, or read as a number and none (``nan``, ``inf``, ``1e400``): no trial's result."""
    try:
        return not math.isfinite(float(text))
    except (TypeError, ValueError):
        return not str(text).strip()


def _number(text: str | None, integer: bool) -> float | None:
    if text is None:
        return None
    try:
        value = float(int(text)) if integer else float(text)
    except (TypeError, ValueError, OverflowError):  # an integer past a double's range: not a number here
        return None
    return value if math.isfinite(value) else None


def validate_parameter(p: ParameterSpec, path: str, limits: Limits | None = None) -> list[FieldError]:
    """The rules of one parameter (type, distribution, feasible space)."""
    errors = []
    if not p.name:
        errors.append(FieldError(f"{path}.name", "is required"))
    if p.parameter_type not in PARAMETER_TYPES:
        errors.append(FieldError(f"{path}.parameterType", f"must be one of {', '.join(PARAMETER_TYPES)} (got {p.parameter_type!r})"))
    fs = p.feasible_space
    fpath = f"{path}.feasibleSpace"
    if fs is None or (fs.min is None and fs.max is None and fs.list_ is None and fs.step is None):
        errors.append(FieldError(fpath, "must not be empty"))
        return errors
    if fs.distribution not in (None, *DISTRIBUTIONS):
        errors.append(FieldError(f"{fpath}.distribution", f"must be one of {', '.join(DISTRIBUTIONS)} (got {fs.distribution!r})"))
    if p.parameter_type in ("double", "int"):
        integer = p.parameter_type == "int"
        kind = "an integer" if integer else "a number"
        if fs.list_ is not None:
            errors.append(FieldError(f"{fpath}.list", f"must not be set for a {p.parameter_type} parameter"))
        past_int64 = {field for field, raw in (("min", fs.min), ("max", fs.max))
                      if integer and raw is not None and abs(_integer(raw) or 0) > MAX_INT}
        lo = None if "min" in past_int64 else _number(fs.min, integer)
        hi = None if "max" in past_int64 else _number(fs.max, integer)
        for field, raw, value in (("min", fs.min, lo), ("max", fs.max, hi)):
            if raw is None:
                errors.append(FieldError(f"{fpath}.{field}", f"is required for a {p.parameter_type} parameter"))
            elif field in past_int64:
                errors.append(FieldError(f"{fpath}.{field}", f"must be a 64-bit integer, within ±{MAX_INT} (got {raw})"))
            elif value is None:
                errors.append(FieldError(f"{fpath}.{field}", f"must be {kind} (got {raw!r})"))
        if lo is not None and hi is not None:
            # Katib's webhook does not compare them: min == max is one value (Katib's own
            # hyperband example has one); an empty range is refused here all the same.
            if lo > hi:
                errors.append(FieldError(f"{fpath}.min", f"must not exceed max (got {fs.min} > {fs.max})"))
            elif not math.isfinite(hi - lo):
                errors.append(FieldError(f"{fpath}.max", f"max - min must be a finite number (got {fs.max} - {fs.min})"))
            if fs.distribution in ("logUniform", "logNormal") and lo <= 0:
                errors.append(FieldError(f"{fpath}.min", f"must be > 0 for the {fs.distribution} distribution (got {fs.min})"))
        if fs.step is not None:
            step = _number(fs.step, integer)
            if step is None:
                errors.append(FieldError(f"{fpath}.step", f"must be {kind} (got {fs.step!r})"))
            elif step <= 0:
                errors.append(FieldError(f"{fpath}.step", f"must be > 0 (got {fs.step})"))
            elif lo is not None and hi is not None and lo < hi and step > hi - lo:
                errors.append(FieldError(f"{fpath}.step", f"must be at most max - min = {hi - lo:g} (got {fs.step})"))
    elif p.parameter_type in ("discrete", "categorical"):
        for field, text in (("min", fs.min), ("max", fs.max), ("step", fs.step)):
            if text is not None:
                errors.append(FieldError(f"{fpath}.{field}", f"must not be set for a {p.parameter_type} parameter"))
        if not fs.list_:
            errors.append(FieldError(f"{fpath}.list", f"must be a non-empty list for a {p.parameter_type} parameter"))
        elif problem := (limits or Limits.from_env()).exceeded("list_values", len(fs.list_), "values"):
            errors.append(FieldError(f"{fpath}.list", problem))
        else:
            seen: set[str] = set()
            for k, item in enumerate(fs.list_):
                if p.parameter_type == "discrete" and _number(item, False) is None:
                    errors.append(FieldError(f"{fpath}.list[{k}]", f"must be a number for a discrete parameter (got {item!r})"))
                if item in seen:
                    errors.append(FieldError(f"{fpath}.list[{k}]", f"duplicate value {item!r}"))
                seen.add(item)
    return errors
