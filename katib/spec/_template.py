"""Trial template rendering, exactly as Katib substitutes placeholders.

``${trialParameters.<name>}`` is replaced by the value of the trial parameter whose
``reference`` is either an experiment parameter name or a metadata key such as
``${trialSpec.Name}`` or ``${trialSpec.Labels[app]}``.
"""

from __future__ import annotations

import copy
import random
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from ._models import TrialTemplate

PLACEHOLDER = re.compile(r"\$\{trialParameters\.([^}]*)\}")
METADATA_REFERENCE = re.compile(
    r"^\$\{trialSpec\.(Name|Namespace|Kind|APIVersion|Labels\[(.+)\]|Annotations\[(.+)\])\}$"
)

# Batch Jobs and Kubeflow training jobs get Katib's default conditions.
JOB_SUCCESS = 'status.conditions.#(type=="Complete")#|#(status=="True")#'
JOB_FAILURE = 'status.conditions.#(type=="Failed")#|#(status=="True")#'
KUBEFLOW_SUCCESS = 'status.conditions.#(type=="Succeeded")#|#(status=="True")#'
KUBEFLOW_FAILURE = 'status.conditions.#(type=="Failed")#|#(status=="True")#'
# The labels Katib puts on every trial and on its job and pods.
EXPERIMENT_LABEL = "katib.kubeflow.org/experiment"
TRIAL_LABEL = "katib.kubeflow.org/trial"
KUBEFLOW_JOB_KINDS = frozenset({"TFJob", "PyTorchJob", "XGBoostJob", "MPIJob"})
KUBEFLOW_PRIMARY_POD_LABELS = {"training.kubeflow.org/job-role": "master"}
# Katib 0.19's defaults for Kubeflow Trainer's TrainJob (its conditions are a batch Job's).
TRAINJOB_KIND = "TrainJob"
TRAINJOB_PRIMARY_POD_LABELS = {"jobset.sigs.k8s.io/replicatedjob-name": "node", "batch.kubernetes.io/job-completion-index": "0"}


@dataclass
class TrialMeta:
    """What a metadata reference can name."""

    name: str
    namespace: str
    kind: str = ""
    api_version: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)


NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # Kubernetes' rand.String alphabet


def new_trial_name(experiment: str, taken: Collection[str] = ()) -> str:
    """Katib's trial name, ``<experiment>-<8 random characters>``, not one of ``taken``."""
    while True:
        name = f"{experiment}-{''.join(random.choices(NAME_ALPHABET, k=8))}"
        if name not in taken:
            return name


def generated_name(prefix: str) -> str:
    """A name for ``metadata.generateName`` as the Kubernetes API server makes one: the
    prefix, cut to 58 characters, and 5 random characters of its alphabet."""
    return prefix[:58] + "".join(random.choices(NAME_ALPHABET, k=5))


def is_metadata_reference(reference: str) -> bool:
    return METADATA_REFERENCE.match(reference) is not None


def resolve_metadata(reference: str, meta: TrialMeta) -> str | None:
    m = METADATA_REFERENCE.match(reference)
    if m is None:
        return None
    key = m.group(1)
    if key == "Name":
        return meta.name
    if key == "Namespace":
        return meta.namespace
    if key == "Kind":
        return meta.kind
    if key == "APIVersion":
        return meta.api_version
    if m.group(2) is not None:
        return meta.labels.get(m.group(2), "")
    return meta.annotations.get(m.group(3) or "", "")


def placeholders(obj: Any) -> set[str]:
    """Every ``${trialParameters.X}`` name used anywhere in ``obj``."""
    found: set[str] = set()

    def collect(text: str) -> str:
        found.update(PLACEHOLDER.findall(text))
        return text

    _walk_strings(obj, collect)
    return found


# How much longer than its template a trial's rendered spec may grow (characters): a value
# of 500 KB (an annotation, a list parameter's value) in 12,000 placeholders rendered a
# 6 GB spec from a 740 KB request.
RENDER_GROWTH = 1 << 20


class RenderTooLarge(ValueError):
    """The trial's spec would grow past ``RENDER_GROWTH`` characters as it is rendered."""


def substitute(obj: Any, values: Mapping[str, str]) -> Any:
    """A deep copy of ``obj`` with every placeholder in keys and values replaced;
    ``RenderTooLarge`` where that would add more than ``RENDER_GROWTH`` characters (checked
    before each string is built)."""
    grown = 0

    def replace(text: str) -> str:
        nonlocal grown
        found = list(PLACEHOLDER.finditer(text))
        if not found:
            return text
        grown += sum(len(values.get(m.group(1), m.group(0))) - len(m.group(0)) for m in found)
        if grown > RENDER_GROWTH:
            raise RenderTooLarge(f"the trial's spec would grow by more than {RENDER_GROWTH} characters as its "
                                 "placeholders are replaced (a long value in many ${trialParameters...})")
        return PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), text)

    return _walk_strings(copy.deepcopy(obj), replace)


def trial_parameter_values(
    template: TrialTemplate, assignments: Mapping[str, str], meta: TrialMeta
) -> dict[str, str]:
    values: dict[str, str] = {}
    for tp in template.trial_parameters or []:
        if not tp.name or tp.reference is None:
            continue
        resolved = resolve_metadata(tp.reference, meta)
        values[tp.name] = resolved if resolved is not None else assignments.get(tp.reference, "")
    return values


def render(template: TrialTemplate, assignments: Mapping[str, str], meta: TrialMeta) -> dict:
    """The trial's run spec: ``trialSpec`` with every placeholder substituted."""
    if template.trial_spec is None:
        raise ValueError("trialTemplate has no trialSpec to render")
    spec = template.trial_spec
    own = spec.get("metadata") or {}
    meta.kind = meta.kind or str(spec.get("kind", ""))
    meta.api_version = meta.api_version or str(spec.get("apiVersion", ""))
    meta.labels = {**(own.get("labels") or {}), **meta.labels}
    meta.annotations = {**(own.get("annotations") or {}), **meta.annotations}
    rendered = substitute(spec, trial_parameter_values(template, assignments, meta))
    return rendered


def find_containers(obj: Any) -> list[dict]:
    """All container objects (entries of any ``containers`` list) inside a job manifest."""
    found: list[dict] = []
    if isinstance(obj, dict):
        for key, value in obj.items():
            if key == "containers" and isinstance(value, list):
                found.extend(c for c in value if isinstance(c, dict))
            else:
                found.extend(find_containers(value))
    elif isinstance(obj, list):
        for item in obj:
            found.extend(find_containers(item))
    return found


def _walk_strings(obj: Any, fn: Any) -> Any:
    if isinstance(obj, str):
        return fn(obj)
    if isinstance(obj, dict):
        return {_walk_strings(k, fn): _walk_strings(v, fn) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_walk_strings(v, fn) for v in obj]
    return obj
