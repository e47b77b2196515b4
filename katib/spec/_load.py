"""From YAML/JSON text or a dict to a defaulted, validated ``Experiment``."""

from __future__ import annotations

import copy
import json
from collections.abc import Collection
from typing import Any

import pydantic
import yaml

from katib.errors import FieldError, ValidationError

from ._defaults import apply_defaults
from ._models import Experiment
from ._optimizationjob import (
    is_optimization_job,
    optimization_job_errors,
    source_errors,
    to_experiment,
)
from ._validate import validate

# What one document may cost to load (docs/security.md): aliases may expand to at most
# ALIAS_BUDGET nodes in all (a "billion laughs" file is refused, not expanded), and no
# document may nest deeper than MAX_DEPTH.
ALIAS_BUDGET = 10_000
# And to at most ALIAS_TEXT characters of text: 2,000 aliases of one 500 KB string are few
# nodes, and a 500 KB file expanded to a gigabyte (a dry run's answer, a stored spec).
ALIAS_TEXT = 1 << 20
MAX_DEPTH = 64
# Nor hold more than MAX_NODES values (scalars, lists, maps, aliases): counted from the
# parser's events before any object is built. A flat 1 MiB list of half a million numbers
# took 17 s of CPU and 390 MB to load; a Katib experiment is a few hundred values, and a
# list parameter at most KATIB_MAX_LIST_VALUES (10,000).
MAX_NODES = 100_000
# libyaml where PyYAML was built with it (the wheels are): the events and the nodes are
# made in C, about 7 times faster than PyYAML's own parser, with the same checks on top.
_C_LOADER: Any = getattr(yaml, "CSafeLoader", None)


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing duplicate keys and alias bombs (its depth and size
    are ``_shape``'s, checked first)."""

    def compose_document(self) -> yaml.Node | None:
        node = super().compose_document()
        if node is not None:
            _Expansion().size(node, 0)
        return node

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[tuple[str, str]] = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                key = (key_node.tag, key_node.value)
                if key in seen:
                    raise _LoadError(f"duplicate key {key_node.value!r}", key_node.start_mark)
                seen.add(key)
        return yaml.constructor.SafeConstructor.construct_mapping(self, node, deep=deep)


if _C_LOADER is not None:

    class _CBoundedLoader(_C_LOADER):  # type: ignore[misc,valid-type]
        """libyaml's safe loader with ``_BoundedLoader``'s checks: nesting and size come
        from ``_shape`` first; aliases are counted on each document's nodes; duplicate
        keys are refused as the mappings are built."""

        def get_node(self) -> yaml.Node | None:
            node = super().get_node()
            if node is not None:
                _Expansion().size(node, 0)
            return node  # type: ignore[no-any-return]

        construct_mapping = _BoundedLoader.construct_mapping


def _shape(text: str) -> None:
    """Refuse a text whose documents nest deeper than MAX_DEPTH or hold more than MAX_NODES
    values, from its parse events alone (flat: the parser keeps a stack, not a recursion)."""
    depth = nodes = 0
    for event in yaml.parse(text, Loader=_C_LOADER or yaml.SafeLoader):
        if isinstance(event, yaml.DocumentStartEvent):
            nodes = 0
        elif isinstance(event, (yaml.ScalarEvent, yaml.AliasEvent, yaml.CollectionStartEvent)):
            nodes += 1
            if depth + 1 > MAX_DEPTH:
                raise _LoadError(f"nests deeper than {MAX_DEPTH} levels", event.start_mark)
            if nodes > MAX_NODES:
                raise _LoadError(f"a document holds more than {MAX_NODES} values", event.start_mark)
            depth += isinstance(event, yaml.CollectionStartEvent)
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


class _LoadError(Exception):
    def __init__(self, message: str, mark: Any = None) -> None:
        super().__init__(message)
        self.mark = mark


class _Expansion:
    """The size of a node graph with every alias expanded, in nodes and in characters of
    text, bounded as it is counted."""

    def __init__(self) -> None:
        self.sizes: dict[int, tuple[int, int]] = {}
        self.open: set[int] = set()
        self.aliased = 0
        self.aliased_text = 0

    def size(self, node: yaml.Node, depth: int) -> tuple[int, int]:
        if depth > MAX_DEPTH:
            raise _LoadError(f"nests deeper than {MAX_DEPTH} levels", node.start_mark)
        key = id(node)
        if key in self.open:
            raise _LoadError("an alias refers to a node that contains it", node.start_mark)
        if key in self.sizes:  # a node met again is an alias: its expansion counts
            nodes, text = self.sizes[key]
            self.aliased += nodes
            self.aliased_text += text
            if self.aliased > ALIAS_BUDGET:
                raise _LoadError(f"aliases expand to more than {ALIAS_BUDGET} nodes", node.start_mark)
            if self.aliased_text > ALIAS_TEXT:
                raise _LoadError(f"aliases expand to more than {ALIAS_TEXT} characters of text", node.start_mark)
            return nodes, text
        self.open.add(key)
        n, text = 1, 0
        if isinstance(node, yaml.ScalarNode):
            text = len(node.value)
        else:
            children = node.value if isinstance(node, yaml.SequenceNode) else [c for kv in node.value for c in kv]
            for child in children:
                child_n, child_text = self.size(child, depth + 1)
                n, text = n + child_n, text + child_text
        self.open.discard(key)
        self.sizes[key] = (n, text)
        return n, text


def _depth_error(doc: Any) -> str | None:
    """Why a parsed (JSON) document is too deep or too big (``_shape``'s bounds, a key
    counting as a value as YAML's do), or None; iterative, so it cannot recurse."""
    stack, nodes = [(doc, 1)], 0
    while stack:
        value, depth = stack.pop()
        nodes += 1
        if depth > MAX_DEPTH:
            return f"nests deeper than {MAX_DEPTH} levels"
        if nodes > MAX_NODES:
            return f"a document holds more than {MAX_NODES} values"
        if isinstance(value, dict):
            nodes += len(value)
            stack += [(v, depth + 1) for v in value.values()]
        elif isinstance(value, list):
            stack += [(v, depth + 1) for v in value]
    return None


def _refuse(where: str, problem: str, what: str = "YAML") -> ValidationError:
    return ValidationError([FieldError(where, f"invalid {what}: {problem}")], what)


def _number_problem(exc: ValueError) -> str:
    return "a number has more than 4300 digits" if "digits" in str(exc) else str(exc)


def load_documents(text: str) -> list[Any]:
    """Every document of a (multi-document) YAML or JSON text; empty documents dropped.
    Duplicate keys, alias bombs, deep nesting and oversized numbers are refused."""
    try:
        _shape(text)
        docs = list(yaml.load_all(text, Loader=_CBoundedLoader if _C_LOADER else _BoundedLoader))  # noqa: S506 (safe loaders)
    except _LoadError as exc:
        mark = exc.mark
        raise _refuse(f"line {mark.line + 1}, column {mark.column + 1}" if mark else "document", str(exc)) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "document"
        problem = getattr(exc, "problem", None) or str(exc)
        if "maximum nesting depth" in problem:  # libyaml's own bound (1,000), met scanning ahead
            problem = f"nests deeper than {MAX_DEPTH} levels"
        raise _refuse(where, problem) from None
    except RecursionError:
        raise _refuse("document", f"nests deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:  # an integer past Python's 4,300 digits
        raise _refuse("document", _number_problem(exc)) from None
    return [d for d in docs if d is not None]


def dump_yaml(obj: Any) -> str:
    """``obj`` as YAML, keys in their order; libyaml's emitter where there is one (the same
    text as PyYAML's own, a third of its time: a served spec is dumped on every view)."""
    return yaml.dump(obj, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper), sort_keys=False)


def load_json(text: str) -> Any:
    """One JSON document, with the YAML loader's bounds (duplicate keys, depth, numbers)."""

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in items:
            if key in out:
                raise _LoadError(f"duplicate key {key!r}")
            out[key] = value
        return out

    try:
        doc = json.loads(text, object_pairs_hook=pairs)
    except json.JSONDecodeError as exc:
        raise _refuse(f"line {exc.lineno}, column {exc.colno}", exc.msg, "JSON") from None
    except _LoadError as exc:
        raise _refuse("document", str(exc), "JSON") from None
    except RecursionError:
        raise _refuse("document", f"nests deeper than {MAX_DEPTH} levels", "JSON") from None
    except ValueError as exc:
        raise _refuse("document", _number_problem(exc), "JSON") from None
    problem = _depth_error(doc)
    if problem:
        raise _refuse("document", problem, "JSON")
    return doc


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


def _as_experiment(doc: Any) -> Any:
    """A Kubeflow Trainer OptimizationJob as the Katib Experiment it stands for (after
    upstream's field rules); any other document as it is."""
    if not is_optimization_job(doc):
        return doc
    errors = optimization_job_errors(doc)
    if errors:
        raise ValidationError(errors)
    return to_experiment(doc)


def parse_experiment(doc: Any) -> Experiment:
    """The ``Experiment`` model of one document, without defaults or rules."""
    exp, errors = _parse(_as_experiment(doc))
    if errors or exp is None:
        raise ValidationError(errors)
    return exp


def admit(
    doc: Any,
    known_algorithms: Collection[str] | None = None,
    known_early_stopping: Collection[str] | None = None,
    kept_source: str | None = None,
) -> Experiment:
    """Parse, default and validate one experiment document (a Katib Experiment, or a
    Kubeflow Trainer OptimizationJob); raise with every error. A Katib Experiment may not
    carry the annotation that marks one written from an OptimizationJob
    (``OPTIMIZATION_JOB_SOURCE``), but for an edit of a stored experiment that already does
    (``kept_source``: its value), which must leave it as it is."""
    source = source_errors(doc, kept_source)
    parsed, errors = _parse(_as_experiment(doc))
    errors = source + errors
    if parsed is not None:
        parsed = apply_defaults(parsed)
        errors += validate(parsed, known_algorithms, known_early_stopping)
    if errors or parsed is None:
        raise ValidationError(as_written(doc, errors))
    return parsed


def as_written(doc: Any, errors: list[FieldError]) -> list[FieldError]:
    """``errors`` about the experiment of ``doc``, at the fields ``doc`` wrote (an
    OptimizationJob's own names; a Katib Experiment's errors as they are)."""
    return [_in_optimization_job(e) for e in errors] if is_optimization_job(doc) else errors


# Where the Experiment's fields came from in an OptimizationJob.
_OPTIMIZATION_PATHS = (("spec.maxTrialCount", "spec.numTrials"), ("spec.parallelTrialCount", "spec.parallelTrials"),
                       ("spec.objective", "spec.objectives"), ("spec.algorithm", "spec.searchAlgorithm"),
                       ("spec.trialTemplate.trialSpec", "spec.trainJobTemplate"))


def _in_optimization_job(error: FieldError) -> FieldError:
    """An error about the Experiment an OptimizationJob was written as, at the field the user wrote."""
    for katib, ours in _OPTIMIZATION_PATHS:
        if error.path == katib or error.path.startswith(katib + ".") or error.path.startswith(katib + "["):
            return FieldError(ours + error.path[len(katib):], f"{error.message} (as the Katib Experiment's {error.path})")
    return error


def experiment_documents(text: str) -> list[dict[str, Any]]:
    """The documents of ``text`` that are Katib Experiments (kind Experiment or no kind) or
    Kubeflow Trainer OptimizationJobs."""
    return [
        d for d in load_documents(text)
        if not isinstance(d, dict) or d.get("kind") in (None, "Experiment") or is_optimization_job(d)
    ]
