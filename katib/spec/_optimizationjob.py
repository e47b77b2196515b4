"""Kubeflow Trainer's ``OptimizationJob`` (``trainer.kubeflow.org/v1alpha1``), as a superset.

An OptimizationJob is checked with upstream's field rules (its CRD's schema and CEL rules),
then written as the Katib Experiment it stands for, which runs like any other:

- ``objectives[0]`` is the objective, the rest are ``additionalObjectives``;
- ``searchAlgorithm.random{seed}`` is ``random`` with ``random_state``, ``grid{}`` is ``grid``;
- ``parameters[].searchSpace`` ``uniform``/``logUniform`` (``type`` Float or Int) and
  ``categorical`` are Katib's double/int (``distribution`` uniform/logUniform) and categorical;
- ``numTrials``/``parallelTrials`` are ``maxTrialCount``/``parallelTrialCount``;
- ``trainJobTemplate`` is the trial's TrainJob; each parameter reaches the trial as the
  environment variable ``KUBEFLOW_TRAINER_OPT_<NAME>`` (the name upper-cased, every
  character but a letter or digit an underscore) in ``spec.trainer.env``, and all of them as
  the JSON annotation ``trainer.kubeflow.org/optimization-parameters`` on the TrainJob;
  the TrainJob is labelled ``trainer.kubeflow.org/optimization-job: <name>``.

Limits lifted on purpose (``LIFTED``, docs/kubeflow-sdk.md): up to 8 objectives (upstream: 1),
``numTrials`` and ``parallelTrials`` bounded by the server's limits (upstream: 100 each),
every Katib algorithm (``searchAlgorithm.katib{algorithmName, algorithmSettings}``, upstream:
random and grid) and Katib's ``earlyStopping`` in the spec. Leniency: ``direction`` is
taken in any case (the proposal's own sample writes ``minimize``).
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from katib.errors import FieldError

API_GROUP = "trainer.kubeflow.org"
KIND = "OptimizationJob"
ENV_PREFIX = "KUBEFLOW_TRAINER_OPT_"
PARAMETERS_ANNOTATION = "trainer.kubeflow.org/optimization-parameters"
JOB_LABEL = "trainer.kubeflow.org/optimization-job"
SOURCE_ANNOTATION = "katib.kubeflow.org/optimization-job"  # on the Experiment: it was written from one
MAX_OBJECTIVES = 8
UPSTREAM = {"objectives": 1, "numTrials": 100, "parallelTrials": 100}
LIFTED = (
    "objectives: up to 8 (upstream: exactly 1); the first is the objective, the rest additionalObjectives",
    "numTrials: up to the server's trial limit, KATIB_MAX_TRIALS (upstream: 100)",
    "parallelTrials: up to the server's parallel limit, KATIB_MAX_PARALLEL_TRIALS, 1,000 by default (upstream: 100)",
    "searchAlgorithm.katib{algorithmName, algorithmSettings}: every Katib algorithm (upstream: random or grid)",
    "earlyStopping: Katib's early stopping (upstream: none)",
)
_DOUBLE = re.compile(r"^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$")


def is_optimization_job(doc: Any) -> bool:
    return (isinstance(doc, dict) and doc.get("kind") == KIND
            and str(doc.get("apiVersion", "")).startswith(API_GROUP + "/"))


def env_name(parameter: str) -> str:
    return ENV_PREFIX + re.sub(r"[^A-Za-z0-9]", "_", parameter).upper()


def _str_len(value: Any, path: str, low: int = 1, high: int = 64) -> list[FieldError]:
    if not isinstance(value, str) or not value:
        return [FieldError(path, "is required (a string)")]
    if not low <= len(value) <= high:
        return [FieldError(path, f"must be {low} to {high} characters (got {len(value)})")]
    return []


def _unknown(value: dict[str, Any], known: set[str], path: str) -> list[FieldError]:
    """A field this level of an OptimizationJob does not have: refused, as the API server's
    strict field validation does (a misspelt ``seed`` or a ``goal`` was dropped unsaid)."""
    return [FieldError(f"{path}.{k}" if path else k, f"unknown field (known here: {', '.join(sorted(known)) or 'none'})")
            for k in sorted(map(str, set(value) - known))]


def _strings(value: Any, path: str) -> list[FieldError]:
    """``labels`` or ``annotations``: a mapping of strings, if given."""
    if value is None:
        return []
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        return [FieldError(path, "must be a mapping of strings to strings")]
    return []


def _int_field(spec: dict[str, Any], field: str, errors: list[FieldError]) -> int:
    value = spec.get(field, 1)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        errors.append(FieldError(f"spec.{field}", f"must be an integer of at least 1 (got {value!r})"))
        return 1
    return value


def _space_errors(space: Any, path: str) -> list[FieldError]:
    if not isinstance(space, dict):
        return [FieldError(path, "is required: exactly one of uniform, logUniform and categorical")]
    kinds = [k for k in ("uniform", "logUniform", "categorical") if space.get(k) is not None]
    unknown = sorted(set(space) - {"uniform", "logUniform", "categorical"})
    if unknown:
        return [FieldError(f"{path}.{unknown[0]}", "unknown field (a search space is uniform, logUniform or categorical)")]
    if len(kinds) != 1:
        return [FieldError(path, f"must set exactly one of uniform, logUniform and categorical (got {', '.join(kinds) or 'none'})")]
    kind = kinds[0]
    body = space[kind]
    p = f"{path}.{kind}"
    if not isinstance(body, dict):
        return [FieldError(p, "must be a mapping")]
    unknown_fields = _unknown(body, {"choices"} if kind == "categorical" else {"min", "max", "type"}, p)
    if unknown_fields:
        return unknown_fields
    if kind == "categorical":
        choices = body.get("choices")
        if not isinstance(choices, list) or not 1 <= len(choices) <= 100:
            return [FieldError(f"{p}.choices", "must list 1 to 100 choices")]
        errors = [e for i, c in enumerate(choices) for e in _str_len(c, f"{p}.choices[{i}]", 1, 64)]
        if len(set(map(str, choices))) != len(choices):
            errors.append(FieldError(f"{p}.choices", "must not repeat a choice (a set)"))
        return errors
    errors = []
    bounds = {}
    for field in ("min", "max"):
        value = body.get(field)
        if not isinstance(value, str) or not _DOUBLE.fullmatch(value) or len(value) > 64:
            errors.append(FieldError(f"{p}.{field}", f"must be a decimal number as a string, such as \"0.01\" (got {value!r})"))
        else:
            bounds[field] = float(value)
    if body.get("type", "Float") not in ("Float", "Int"):
        errors.append(FieldError(f"{p}.type", f"must be Float or Int (got {body.get('type')!r})"))
    if len(bounds) == 2:
        if kind == "logUniform" and bounds["min"] <= 0:
            errors.append(FieldError(f"{p}.min", "must be strictly greater than 0"))
        if bounds["min"] >= bounds["max"]:
            errors.append(FieldError(p, "min must be strictly less than max"))
    return errors


def optimization_job_errors(doc: dict[str, Any]) -> list[FieldError]:
    """Upstream's field rules, but for the limits lifted on purpose (``LIFTED``)."""
    errors = _unknown(doc, {"apiVersion", "kind", "metadata", "spec", "status"}, "")
    if doc.get("apiVersion") != f"{API_GROUP}/v1alpha1":
        errors.append(FieldError("apiVersion", f"must be {API_GROUP}/v1alpha1 (got {doc.get('apiVersion')!r})"))
    meta = doc.get("metadata")
    if meta is not None and not isinstance(meta, dict):
        errors.append(FieldError("metadata", "must be a mapping"))
    elif meta is not None:
        errors += _strings(meta.get("labels"), "metadata.labels") + _strings(meta.get("annotations"), "metadata.annotations")
    spec = doc.get("spec")
    if not isinstance(spec, dict):
        return [*errors, FieldError("spec", "is required")]
    objectives = spec.get("objectives")
    if not isinstance(objectives, list) or not 1 <= len(objectives) <= MAX_OBJECTIVES:
        errors.append(FieldError("spec.objectives", f"must list 1 to {MAX_OBJECTIVES} objectives (upstream allows 1; katib lifts it)"))
        objectives = []
    metrics = set()
    for i, o in enumerate(objectives):
        p = f"spec.objectives[{i}]"
        if not isinstance(o, dict):
            errors.append(FieldError(p, "must be a mapping with metric and direction"))
            continue
        errors += _unknown(o, {"metric", "direction"}, p)
        errors += _str_len(o.get("metric"), f"{p}.metric")
        metric = o.get("metric")
        if isinstance(metric, str):  # else said above
            if metric in metrics:
                errors.append(FieldError(f"{p}.metric", f"duplicate metric {metric!r} (objectives are keyed by metric)"))
            metrics.add(metric)
        if str(o.get("direction", "Minimize")).capitalize() not in ("Maximize", "Minimize"):
            errors.append(FieldError(f"{p}.direction", f"must be Maximize or Minimize (got {o.get('direction')!r})"))
    parameters = spec.get("parameters")
    if not isinstance(parameters, list) or not 1 <= len(parameters) <= 100:
        errors.append(FieldError("spec.parameters", "must list 1 to 100 parameters"))
        parameters = []
    names: set[str] = set()
    for i, prm in enumerate(parameters):
        p = f"spec.parameters[{i}]"
        if not isinstance(prm, dict):
            errors.append(FieldError(p, "must be a mapping with name and searchSpace"))
            continue
        errors += _unknown(prm, {"name", "searchSpace"}, p)
        errors += _str_len(prm.get("name"), f"{p}.name")
        name = prm.get("name")
        if isinstance(name, str):  # else said above
            if name in names:
                errors.append(FieldError(f"{p}.name", f"duplicate parameter {name!r}"))
            elif env_name(name) in {env_name(n) for n in names}:
                errors.append(FieldError(f"{p}.name", f"{name!r} makes the same variable {env_name(name)} as another parameter"))
            names.add(name)
        errors += _space_errors(prm.get("searchSpace"), f"{p}.searchSpace")
    num, parallel = _int_field(spec, "numTrials", errors), _int_field(spec, "parallelTrials", errors)
    if parallel > num:
        errors.append(FieldError("spec.parallelTrials", f"parallelTrials cannot exceed numTrials ({parallel} > {num})"))
    algorithm = spec.get("searchAlgorithm") or {"random": {}}
    if not isinstance(algorithm, dict):
        errors.append(FieldError("spec.searchAlgorithm", "must be a mapping: random, grid or katib"))
    else:
        chosen = [k for k in ("random", "grid", "katib") if algorithm.get(k) is not None]
        body = algorithm.get(chosen[0]) if len(chosen) == 1 else None
        known = {"random": {"seed"}, "grid": set(), "katib": {"algorithmName", "algorithmSettings"}}
        extra = _unknown(body, known[chosen[0]], f"spec.searchAlgorithm.{chosen[0]}") if isinstance(body, dict) else []
        if len(chosen) == 1 and not isinstance(body, dict):
            errors.append(FieldError(f"spec.searchAlgorithm.{chosen[0]}", "must be a mapping"))
        elif extra:
            errors += extra
        elif len(chosen) != 1 or set(algorithm) - {"random", "grid", "katib"}:
            errors.append(FieldError("spec.searchAlgorithm", f"must set exactly one of random, grid and katib (got {', '.join(sorted(algorithm)) or 'none'})"))
        elif chosen == ["grid"] and any(isinstance(p, dict) and "categorical" not in (p.get("searchSpace") or {}) for p in parameters):
            errors.append(FieldError("spec.searchAlgorithm.grid", "Grid search requires all parameters to be Categorical; Uniform and LogUniform are not supported."))
        elif chosen == ["random"] and (algorithm["random"] or {}).get("seed") is not None:
            seed = algorithm["random"]["seed"]
            if isinstance(seed, bool) or not isinstance(seed, int):
                errors.append(FieldError("spec.searchAlgorithm.random.seed", f"must be an integer (got {seed!r})"))
        elif chosen == ["katib"] and not (isinstance(algorithm["katib"], dict) and algorithm["katib"].get("algorithmName")):
            errors.append(FieldError("spec.searchAlgorithm.katib.algorithmName", "is required (a Katib algorithm, such as hyperband)"))
    template = spec.get("trainJobTemplate")
    if not isinstance(template, dict) or not isinstance(template.get("spec"), dict):
        errors.append(FieldError("spec.trainJobTemplate.spec", "is required (a TrainJob's spec)"))
    else:
        errors += _unknown(template, {"metadata", "spec"}, "spec.trainJobTemplate")
        job_meta = template.get("metadata") or {}
        if not isinstance(job_meta, dict):
            errors.append(FieldError("spec.trainJobTemplate.metadata", "must be a mapping (labels, annotations)"))
            job_meta = {}
        for field in ("name", "namespace"):
            if job_meta.get(field):
                errors.append(FieldError(f"spec.trainJobTemplate.metadata.{field}", "name and namespace cannot be set in a template."))
        errors += _strings(job_meta.get("labels"), "spec.trainJobTemplate.metadata.labels")
        errors += _strings(job_meta.get("annotations"), "spec.trainJobTemplate.metadata.annotations")
        trainer = template["spec"].get("trainer")
        if trainer is not None and not isinstance(trainer, dict):
            errors.append(FieldError("spec.trainJobTemplate.spec.trainer", "must be a mapping (a TrainJob's trainer)"))
        elif isinstance(trainer, dict) and trainer.get("env") is not None and not isinstance(trainer["env"], list):
            errors.append(FieldError("spec.trainJobTemplate.spec.trainer.env", "must be a list of {name, value}"))
    unknown = sorted(set(spec) - {"objectives", "searchAlgorithm", "parameters", "numTrials", "parallelTrials",
                                  "trainJobTemplate", "earlyStopping"})
    errors += [FieldError(f"spec.{u}", "unknown field of an OptimizationJob") for u in unknown]
    return errors


def _parameter(prm: dict[str, Any]) -> dict[str, Any]:
    space = prm["searchSpace"]
    if space.get("categorical") is not None:
        return {"name": prm["name"], "parameterType": "categorical",
                "feasibleSpace": {"list": [str(c) for c in space["categorical"]["choices"]]}}
    kind = "uniform" if space.get("uniform") is not None else "logUniform"
    body = space[kind]
    feasible = {"min": body["min"], "max": body["max"], "distribution": kind}
    return {"name": prm["name"], "parameterType": "int" if body.get("type") == "Int" else "double", "feasibleSpace": feasible}


def _annotations(doc: Any) -> dict[str, Any] | None:
    meta = doc.get("metadata") if isinstance(doc, dict) else None
    annotations = meta.get("annotations") if isinstance(meta, dict) else None
    return annotations if isinstance(annotations, dict) else None


def source_text(doc: Any) -> str | None:
    """The ``SOURCE_ANNOTATION`` an experiment document (a stored experiment's spec) carries,
    or None: it has none, or one that is not a string. The one reading of it that admission
    (``source_errors``), the OptimizationJob view and the store's list flag share.

    >>> source_text({"metadata": {"annotations": {SOURCE_ANNOTATION: "{}"}}})
    '{}'
    """
    text = (_annotations(doc) or {}).get(SOURCE_ANNOTATION)
    return text if isinstance(text, str) else None


def source_job(doc: Any) -> dict[str, Any] | None:
    """The OptimizationJob the ``SOURCE_ANNOTATION`` of an experiment document holds (its
    JSON, an object), or None: it has none, or one that is not a JSON object.

    >>> source_job({"metadata": {"annotations": {SOURCE_ANNOTATION: '{"kind": "OptimizationJob"}'}}})
    {'kind': 'OptimizationJob'}
    >>> source_job({"metadata": {"annotations": {SOURCE_ANNOTATION: "[1]"}}}) is None
    True
    """
    text = source_text(doc)
    if not text:
        return None
    try:
        job = json.loads(text)
    except (ValueError, RecursionError):  # not JSON, or nested past what the parser follows
        return None
    return job if isinstance(job, dict) else None


def source_errors(doc: Any, kept: str | None = None) -> list[FieldError]:
    """The reserved ``SOURCE_ANNOTATION`` on a document that is not an OptimizationJob: it
    is ours to write (``to_experiment``), and the OptimizationJob view trusts it, so a plain
    Experiment may not carry it. ``kept`` is the one the stored experiment already carries
    (an edit of it): the edit must leave it as it is.

    >>> [str(e) for e in source_errors({"metadata": {"annotations": {SOURCE_ANNOTATION: "{}"}}})][0][:62]
    'metadata.annotations[katib.kubeflow.org/optimization-job]: is '
    >>> source_errors({"metadata": {"annotations": {SOURCE_ANNOTATION: "{}"}}}, kept="{}")
    []
    """
    if is_optimization_job(doc) or not isinstance(doc, dict):
        return []
    annotations = _annotations(doc)
    has = annotations is not None and SOURCE_ANNOTATION in annotations  # any value, a null too
    written = annotations.get(SOURCE_ANNOTATION) if annotations is not None else None
    path = f"metadata.annotations[{SOURCE_ANNOTATION}]"
    if kept is None:
        if not has:
            return []
        return [FieldError(path, "is reserved: katib writes it on the Experiment it makes of a Kubeflow Trainer "
                                 "OptimizationJob; submit the OptimizationJob itself (apiVersion trainer.kubeflow.org/"
                                 "v1alpha1, kind OptimizationJob), or leave the annotation out")]
    if written == kept:
        return []
    return [FieldError(path, "cannot be changed or removed: it records the OptimizationJob this experiment was "
                             "written from (only the trial budget may change)")]


def to_experiment(doc: dict[str, Any]) -> dict[str, Any]:
    """The Katib Experiment an OptimizationJob (checked by ``optimization_job_errors``) stands for."""
    spec = doc["spec"]
    meta = copy.deepcopy(doc.get("metadata") or {})
    meta.setdefault("annotations", {})[SOURCE_ANNOTATION] = json.dumps(doc, separators=(",", ":"))
    objectives = spec["objectives"]
    objective: dict[str, Any] = {"type": str(objectives[0].get("direction", "Minimize")).lower(),
                                 "objectiveMetricName": objectives[0]["metric"]}
    if len(objectives) > 1:
        objective["additionalMetricNames"] = [o["metric"] for o in objectives[1:]]
        objective["additionalObjectives"] = [{"metricName": o["metric"], "type": str(o.get("direction", "Minimize")).lower()}
                                             for o in objectives[1:]]
    algorithm = spec.get("searchAlgorithm") or {"random": {}}
    if algorithm.get("grid") is not None:
        katib_algorithm: dict[str, Any] = {"algorithmName": "grid"}
    elif algorithm.get("katib") is not None:
        katib_algorithm = copy.deepcopy(algorithm["katib"])
    else:
        katib_algorithm = {"algorithmName": "random"}
        seed = (algorithm.get("random") or {}).get("seed")
        if seed is not None:
            katib_algorithm["algorithmSettings"] = [{"name": "random_state", "value": str(seed)}]
    names = [p["name"] for p in spec["parameters"]]
    template = copy.deepcopy(spec["trainJobTemplate"])
    job_meta = template.get("metadata") or {}
    job_meta.setdefault("labels", {})[JOB_LABEL] = str(meta.get("name", ""))
    job_meta.setdefault("annotations", {})[PARAMETERS_ANNOTATION] = json.dumps(
        {n: f"${{trialParameters.{n}}}" for n in names}, separators=(",", ":"))
    trainer = template["spec"].setdefault("trainer", {})
    env = [e for e in trainer.get("env") or [] if not (isinstance(e, dict) and str(e.get("name", "")).startswith(ENV_PREFIX))]
    trainer["env"] = env + [{"name": env_name(n), "value": f"${{trialParameters.{n}}}"} for n in names]
    experiment: dict[str, Any] = {
        "apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment", "metadata": meta,
        "spec": {
            "objective": objective, "algorithm": katib_algorithm,
            "parameters": [_parameter(p) for p in spec["parameters"]],
            "maxTrialCount": spec.get("numTrials", 1), "parallelTrialCount": spec.get("parallelTrials", 1),
            "trialTemplate": {
                "primaryContainerName": "node", "retain": True,
                "trialParameters": [{"name": n, "reference": n} for n in names],
                "trialSpec": {"apiVersion": f"{API_GROUP}/v1alpha1", "kind": "TrainJob",
                              "metadata": job_meta, "spec": template["spec"]},
            },
        },
    }
    if spec.get("earlyStopping") is not None:
        experiment["spec"]["earlyStopping"] = copy.deepcopy(spec["earlyStopping"])
    return experiment


__all__ = ["LIFTED", "UPSTREAM", "env_name", "is_optimization_job", "optimization_job_errors", "source_errors",
           "source_job", "source_text", "to_experiment"]
