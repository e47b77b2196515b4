"""From YAML/JSON text or a dict to a defaulted, validated ``Experiment``."""

from __future__ import annotations

import copy
from collections.abc import Collection
from typing import Any

import pydantic
import yaml

from katib.errors import FieldError, ValidationError

from ._defaults import apply_defaults
from ._models import Experiment
from ._validate import validate


def load_documents(text: str) -> list[Any]:
    """Every document of a (multi-document) YAML or JSON text; empty documents dropped."""
    try:
        docs = list(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "document"
        problem = getattr(exc, "problem", None) or str(exc)
        raise ValidationError([FieldError(where, f"invalid YAML: {problem}")], "YAML") from None
    return [d for d in docs if d is not None]


def _loc_path(loc: tuple[Any, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def _pydantic_errors(exc: pydantic.ValidationError) -> list[FieldError]:
    errors = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if p not in ("function-before", "function-after"))
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        elif err["type"] == "missing":
            msg = "is required"
        errors.append(FieldError(_loc_path(loc), msg))
    return errors


def _without(doc: Any, loc: tuple[Any, ...]) -> None:
    for part in loc[:-1]:
        doc = doc[part]
    doc.pop(loc[-1], None)


def _parse(doc: Any) -> tuple[Experiment | None, list[FieldError]]:
    """The model and the type errors; unknown fields are dropped so the rules still run."""
    if not isinstance(doc, dict):
        return None, [FieldError("", f"an Experiment must be a mapping (got {type(doc).__name__})")]
    try:
        return Experiment.model_validate(doc), []
    except pydantic.ValidationError as exc:
        errors = _pydantic_errors(exc)
        if any(e["type"] != "extra_forbidden" for e in exc.errors()):
            return None, errors
        trimmed = copy.deepcopy(doc)
        for err in exc.errors():
            _without(trimmed, tuple(err["loc"]))
        exp, more = _parse(trimmed)
        return exp, errors + more


def parse_experiment(doc: Any) -> Experiment:
    """The ``Experiment`` model of one document, without defaults or rules."""
    exp, errors = _parse(doc)
    if errors or exp is None:
        raise ValidationError(errors)
    return exp


def admit(
    doc: Any,
    known_algorithms: Collection[str] | None = None,
    known_early_stopping: Collection[str] | None = None,
) -> Experiment:
    """Parse, default and validate one experiment document; raise with every error."""
    parsed, errors = _parse(doc)
    if parsed is None:
        raise ValidationError(errors)
    exp = apply_defaults(parsed)
    errors += validate(exp, known_algorithms, known_early_stopping)
    if errors:
        raise ValidationError(errors)
    return exp


def experiment_documents(text: str) -> list[dict[str, Any]]:
    """The documents of ``text`` that are Katib Experiments (kind Experiment or no kind)."""
    return [
        d for d in load_documents(text)
        if not isinstance(d, dict) or d.get("kind") in (None, "Experiment")
    ]
