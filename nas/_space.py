"""Katib's ``nasConfig`` as a search space: the graph (layers, input and output sizes) and
the operations, each operation's parameters expanded into a flat list of candidate
operations with ids, in Katib's order (operations as listed, then the cartesian product of
their parameters' values in the order the parameters are listed).

>>> space = NasSpace.from_config({"graphConfig": {"numLayers": 2, "inputSizes": [8, 8, 1], "outputSizes": [10]},
...     "operations": [{"operationType": "convolution", "parameters": [
...         {"name": "filter_size", "parameterType": "categorical", "feasibleSpace": {"list": ["3", "5"]}}]}]})
>>> [(op.id, op.type, op.params) for op in space.operations]
[(0, 'convolution', {'filter_size': '3'}), (1, 'convolution', {'filter_size': '5'})]
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from katib.errors import FieldError
from katib.spec import NasConfig, Operation, nas_config_errors

# Operation type → the parameters it accepts (Katib's, plus ``depth_multiplier`` and
# ``pool_size`` that Katib's examples use). ``none`` (the zero operation of DARTS and
# NAS-Bench-201) is our extension.
OPERATION_PARAMETERS: dict[str, frozenset[str]] = {
    "convolution": frozenset({"filter_size", "num_filter", "stride"}),
    "separable_convolution": frozenset({"filter_size", "num_filter", "stride", "depth_multiplier"}),
    "depthwise_convolution": frozenset({"filter_size", "stride", "depth_multiplier"}),
    "dilated_convolution": frozenset({"filter_size", "num_filter", "stride"}),
    "reduction": frozenset({"reduction_type", "pool_size"}),
    "avg_pooling": frozenset({"filter_size", "stride"}),
    "max_pooling": frozenset({"filter_size", "stride"}),
    "skip_connection": frozenset(),
    "none": frozenset(),
}
#: The operation types DARTS turns into primitives.
DARTS_OPERATIONS = ("separable_convolution", "dilated_convolution", "convolution", "depthwise_convolution",
                    "avg_pooling", "max_pooling", "skip_connection", "none")
REDUCTION_TYPES = ("max_pooling", "avg_pooling")
#: The most candidate operations a ``nasConfig`` may expand to (each operation's parameter
#: values multiplied out): ENAS' controller holds two weights per operation and hidden unit,
#: and ``NasSpace.from_config`` lists them all. Katib's ENAS example has 24.
MAX_OPERATIONS = 1000
_POSITIVE_INTEGERS = ("filter_size", "num_filter", "stride", "depth_multiplier", "pool_size")


@dataclass(frozen=True)
class NasOperation:
    """One candidate operation: its id in the flat list, its type and its parameters."""

    id: int
    type: str
    params: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        """Katib's embedding entry."""
        return {"opt_id": self.id, "opt_type": self.type, "opt_params": dict(self.params)}


@dataclass
class NasSpace:
    num_layers: int
    input_sizes: list[int]
    output_sizes: list[int]
    operations: list[NasOperation] = field(default_factory=list)
    #: Each operation spec as given, for DARTS' primitives.
    specs: list[tuple[str, dict[str, list[Any]]]] = field(default_factory=list)

    @classmethod
    def from_config(cls, config: NasConfig | dict[str, Any]) -> NasSpace:
        """The space of a valid ``nasConfig`` (run ``validate_nas_config`` first)."""
        if isinstance(config, dict):
            config = NasConfig.model_validate(config)
        errors = nas_config_errors(config) + validate_nas_config(config, sizes=False)
        if errors:
            raise ValueError("; ".join(str(e) for e in errors))
        gc = config.graph_config
        assert gc is not None and gc.num_layers
        space = cls(gc.num_layers, list(gc.input_sizes or []), list(gc.output_sizes or []))
        for op in config.operations or []:
            assert op.operation_type
            values = {p.name or "": _values(p) for p in op.parameters or []}
            space.specs.append((op.operation_type, values))
            for combo in itertools.product(*values.values()):
                params = dict(zip(values, combo, strict=True))
                space.operations.append(NasOperation(len(space.operations), op.operation_type, params))
        return space

    def nn_config(self, architecture: list[list[int]]) -> dict[str, Any]:
        """Katib's ``nn_config`` for an architecture: the graph and the embedding of every
        operation the architecture uses."""
        return {
            "num_layers": self.num_layers,
            "input_sizes": self.input_sizes,
            "output_sizes": self.output_sizes,
            "embedding": {str(layer[0]): self.operations[layer[0]].as_dict() for layer in architecture},
        }

    def darts_primitives(self) -> list[str]:
        """DARTS' primitive names, as Katib's DARTS service writes them: ``skip_connection``,
        else ``<type>_<k>x<k>`` for each filter size."""
        out: list[str] = []
        for type_, values in self.specs:
            if type_ in ("skip_connection", "none"):
                out.append(type_)
            else:
                out += [f"{type_}_{k}x{k}" for k in values.get("filter_size", [3])]
        return out


def katib_text(value: Any) -> str:
    """A JSON value as Katib's NAS services write trial parameters: JSON with single quotes."""
    return json.dumps(value).replace('"', "'")


def parse_katib_text(text: str) -> Any:
    """The inverse of ``katib_text`` (also reads plain JSON, and a value still wrapped in the
    quotes of a ``--flag="${trialParameters.x}"`` argument that no shell removed)."""
    text = text.strip()
    if len(text) > 1 and text[0] == text[-1] and text[0] in "\"'" and text[1] in "[{":
        text = text[1:-1]
    return json.loads(text.replace("'", '"'))


def _values(p: Any) -> list[Any]:
    fs = p.feasible_space
    if p.parameter_type in ("categorical", "discrete"):
        return list(fs.list_ or [])
    if p.parameter_type == "int":
        return list(_int_range(fs))
    low, delta = Decimal(fs.min), Decimal(fs.step)
    return [float(low + i * delta) for i in range(_count(p))]


def _int_range(fs: Any) -> range:
    return range(int(fs.min), int(fs.max) + 1, int(fs.step or 1))


def _count(p: Any) -> int:
    """How many values ``_values(p)`` lists, without listing them."""
    fs = p.feasible_space
    if p.parameter_type in ("categorical", "discrete"):
        return len(fs.list_ or [])
    if p.parameter_type == "int":
        return len(_int_range(fs))
    low, high, delta = Decimal(fs.min), Decimal(fs.max), Decimal(fs.step)
    return max(0, int((high - low) / delta) + 1)


def operation_count(config: NasConfig) -> int:
    """How many candidate operations ``config`` expands to (``len(NasSpace.operations)``),
    counted without listing them; 0 where a parameter's values cannot be counted."""
    total = 0
    for op in config.operations or []:
        product = 1
        for p in op.parameters or []:
            try:
                product *= _count(p)
            except (TypeError, ValueError, ArithmeticError, AttributeError):
                return 0
        total += product
    return total


def validate_nas_config(config: NasConfig, path: str = "spec.nasConfig", sizes: bool = True) -> list[FieldError]:
    """The rules a NAS algorithm needs beyond Katib's (``katib.spec.nas_config_errors``):
    input and output sizes (when ``sizes``: ENAS builds whole networks from them), known
    operation types and their parameters, finite parameter values, and at most
    ``MAX_OPERATIONS`` candidate operations (counted before any is listed)."""
    errors: list[FieldError] = []
    gc = config.graph_config
    for name, given in (("inputSizes", gc.input_sizes if gc else None), ("outputSizes", gc.output_sizes if gc else None)):
        if not given and sizes:
            errors.append(FieldError(f"{path}.graphConfig.{name}", "is required (e.g. [32, 32, 3] and [10])"))
        elif given and any(s <= 0 for s in given):
            errors.append(FieldError(f"{path}.graphConfig.{name}", f"must be positive (got {given})"))
    for i, op in enumerate(config.operations or []):
        errors += _validate_operation(op, f"{path}.operations[{i}]")
    if (count := operation_count(config)) > MAX_OPERATIONS:
        errors.append(FieldError(f"{path}.operations", f"expand to {count} candidate operations (each operation's "
                                                       f"parameter values multiplied out); at most {MAX_OPERATIONS}"))
    return errors


def _validate_operation(op: Operation, path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    if not op.operation_type:
        return errors  # Katib's rules report it
    allowed = OPERATION_PARAMETERS.get(op.operation_type)
    if allowed is None:
        known = ", ".join(sorted(OPERATION_PARAMETERS))
        return [FieldError(f"{path}.operationType", f"unknown operation {op.operation_type!r} (known: {known})")]
    if not op.parameters and allowed:
        errors.append(FieldError(f"{path}.parameters", f"{op.operation_type} needs parameters (of {', '.join(sorted(allowed))})"))
    for j, p in enumerate(op.parameters or []):
        where = f"{path}.parameters[{j}]"
        if p.name not in allowed:
            names = ", ".join(sorted(allowed)) or "none"
            errors.append(FieldError(f"{where}.name", f"{op.operation_type} has no parameter {p.name!r} (it takes: {names})"))
            continue
        fs = p.feasible_space
        if fs is None:
            errors.append(FieldError(f"{where}.feasibleSpace", "is required"))
            continue
        if p.parameter_type == "double" and not fs.step:
            errors.append(FieldError(f"{where}.feasibleSpace.step", "a NAS double parameter needs a step (the values must be finite)"))
            continue
        try:
            if (count := _count(p)) > MAX_OPERATIONS:  # not listed: a range may hold billions of values
                errors.append(FieldError(f"{where}.feasibleSpace", f"has {count} values; a NAS operation's "
                                                                   f"parameter may have at most {MAX_OPERATIONS}"))
                continue
            values = _values(p)
        except (TypeError, ValueError, ArithmeticError):
            continue  # the general parameter rules report these
        if not values:
            errors.append(FieldError(f"{where}.feasibleSpace", "has no values"))
        if p.name in _POSITIVE_INTEGERS and not all(_positive_integer(v) for v in values):
            errors.append(FieldError(f"{where}.feasibleSpace", f"{p.name} values must be positive integers (got {values})"))
        if p.name == "reduction_type" and not set(map(str, values)) <= set(REDUCTION_TYPES):
            errors.append(FieldError(f"{where}.feasibleSpace.list", f"reduction_type must be among {', '.join(REDUCTION_TYPES)} (got {values})"))
    return errors


def _positive_integer(v: Any) -> bool:
    try:
        return float(v) == int(float(v)) and int(float(v)) > 0
    except (TypeError, ValueError):
        return False
