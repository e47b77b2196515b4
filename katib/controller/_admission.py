"""Admission: everything that must hold before an experiment is stored or run.

``admit`` = parse + Katib's defaults + Katib's rules + the algorithm's own checks of its
settings and search space. ``runnable_errors`` adds what a given executor can't do.
"""

from __future__ import annotations

import json
from typing import Any

from katib.errors import FieldError, ValidationError
from katib.runtimes import is_trainjob, runtime_ref_errors
from katib.spec import Experiment, as_written
from katib.spec import admit as spec_admit


def admit(doc: Any, kept_source: str | None = None) -> Experiment:
    """A defaulted, fully validated experiment, or ``ValidationError`` with every error.
    ``kept_source``: an edit of a stored experiment written from an OptimizationJob, and
    the annotation that says so (``katib.spec.admit``)."""
    from suggestion import algorithm_names, early_stopping_names, get_algorithm, get_early_stopper

    exp = spec_admit(doc, algorithm_names(), early_stopping_names(), kept_source)
    assert exp.spec.algorithm is not None and exp.spec.algorithm.algorithm_name
    errors = get_algorithm(exp.spec.algorithm.algorithm_name).validate(exp)
    if exp.spec.early_stopping is not None and exp.spec.early_stopping.algorithm_name:
        errors += get_early_stopper(exp.spec.early_stopping.algorithm_name).validate(exp)
    if errors:
        raise ValidationError(as_written(doc, errors))
    return exp


def admit_remote(doc: Any, address: str, kept_source: str | None = None) -> Experiment:
    """Like ``admit``, with the algorithm (any name) checked by the gRPC service at ``address``."""
    from suggestion import RemoteAlgorithm, early_stopping_names

    exp = spec_admit(doc, None, early_stopping_names(), kept_source)
    assert exp.spec.algorithm is not None
    errors = RemoteAlgorithm(address, exp.spec.algorithm.algorithm_name or "").validate(exp)
    if errors:
        raise ValidationError(errors)
    return exp


def runnable_errors(exp: Experiment, executor: str = "local") -> list[FieldError]:
    """What stops ``exp`` from running on ``executor`` (an empty list when it can)."""
    if exp.spec.executor == "external":
        return []  # an outside loop runs the trials and tells the metrics
    errors = []
    tt = exp.spec.trial_template
    if tt is not None and tt.config_map is not None:
        errors.append(FieldError(
            "spec.trialTemplate.configMap",
            f"the ConfigMap {tt.config_map.config_map_namespace}/{tt.config_map.config_map_name} is not known here: "
            "name a ConfigMap manifest or folder with --configmaps (or $KATIB_CONFIGMAPS), or create it on the "
            "server (POST /api/v1/namespaces/{namespace}/configmaps)",
        ))
    trial_kind = (tt.trial_spec or {}).get("kind") if tt is not None else None
    engines = {"Workflow": "Argo Workflows", "PipelineRun": "Tekton Pipelines"}
    if trial_kind in engines and executor in ("local", "ray"):
        errors.append(FieldError(
            "spec.trialTemplate.trialSpec.kind",
            f"a {trial_kind} runs its steps through {engines[trial_kind]}' controller, which the {executor} "
            "executor does not have: run it with --executor kubernetes in a cluster that has it",
        ))
    trial_spec = tt.trial_spec if tt is not None else None
    ref = ((trial_spec or {}).get("spec") or {}).get("runtimeRef")
    if executor != "kubernetes" and is_trainjob(trial_spec) and "${" not in json.dumps(ref):
        # resolved here, at each launch: a runtime not known here failed every trial (a cluster resolves its own)
        errors += [FieldError(f"spec.trialTemplate.trialSpec.{e.path}", e.message)
                   for e in runtime_ref_errors(trial_spec or {}, exp.namespace or "default")]
    mc = exp.spec.metrics_collector_spec
    kind = mc.collector.kind if mc and mc.collector else "StdOut"
    # What the executor serves (Executor.collector_kinds), else every kind the
    # katib.collectors registry reads.
    from trials import collector_kinds, executor_class

    declared = executor_class(executor).collector_kinds
    supported = tuple(collector_kinds()) if declared is None else declared
    if kind not in supported:
        errors.append(FieldError(
            "spec.metricsCollectorSpec.collector.kind",
            f"{kind} is not supported by the {executor} executor (supported: {', '.join(supported)})",
        ))
    # A tune()d function whose source cannot run alone cannot run in a pod of another image.
    from katib._function import executor_errors

    errors += executor_errors(exp.metadata.annotations, executor)
    return errors
