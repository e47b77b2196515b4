"""A Python function as a trial: what travels, the command that runs it, and what the
function uses from outside its body.

The function travels twice in the trial's command (``katib._trialmain`` runs it):

- pickled by value with cloudpickle (closures, notebook globals, helpers, imports made
  outside the function all come along), for a trial in the same environment: this machine
  or a Ray cluster. Up to ``INLINE_LIMIT`` bytes go inline; a larger one (a closure over a
  data set) is written beside the experiment's runs, where local trials read it;
- as its source, for a trial that cannot load the pickle (a Kubernetes pod of another
  image), when the source can run alone: a named, undecorated function that uses nothing
  from outside its body.

The experiment carries an annotation (``ANNOTATION``) saying whether the source can run
alone and, if not, why, naming each outside name; ``executor_errors`` turns it into the
error a Kubernetes executor gives before the first trial.
"""

from __future__ import annotations

import base64
import builtins
import dis
import inspect
import json
import sys
import sysconfig
import textwrap
import types
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import FieldError, KatibError

ANNOTATION = "katib.kubeflow.org/function"
INLINE_LIMIT = 64 * 1024  # bytes of compressed pickle inline in the command (one argv string holds 128 KiB)


@dataclass
class Shipment:
    """What ``tune`` puts in the experiment: the container's command, the annotation, and
    the pickle to write to ``payload_file`` when it is too large to go inline."""

    command: list[str]
    annotation: str
    payload: bytes
    payload_file: Path | None


def searched(parameters: dict[str, Any]) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """The parameters searched (``katib.search``'s dicts, with a ``parameterType``) and the
    constants, passed to the function as they are (Katib's SDK: "Otherwise, add value to
    the function input"). A constant travels as JSON; ``KatibError`` names one that cannot."""
    space: dict[str, dict[str, Any]] = {}
    constants: dict[str, Any] = {}
    for name, value in parameters.items():
        if isinstance(value, dict) and "parameterType" in value:
            space[name] = value
            continue
        try:
            if json.loads(json.dumps(value, allow_nan=False)) != value:
                raise ValueError("it does not come back the same from JSON")
        except (TypeError, ValueError) as exc:
            raise KatibError(f"parameters[{name!r}]: a constant passed to the function must be a JSON value "
                             f"(a number, text, a list or a dict of them), or search a range with katib.search "
                             f"(got {type(value).__name__}: {exc})") from None
        constants[name] = value
    if not space:
        raise KatibError("parameters: at least one must be searched (katib.search.double, int, categorical or "
                         "discrete); the others are constants passed to the function as they are")
    return space, constants


def kinds(parameters: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Each parameter's Python type by its Katib type: int, float or str (a discrete list
    of whole numbers is int, any other discrete list float)."""
    out = {}
    for name, spec in parameters.items():
        ptype = spec.get("parameterType")
        if ptype == "int":
            out[name] = "int"
        elif ptype == "double":
            out[name] = "float"
        elif ptype == "discrete":
            values = (spec.get("feasibleSpace") or {}).get("list") or []
            out[name] = "int" if all(_whole(v) for v in values) else "float"
        else:
            out[name] = "str"
    return out


def _whole(text: Any) -> bool:
    try:
        return float(text).is_integer()
    except (TypeError, ValueError):
        return False


def call_style(fn: Callable[..., Any], names: list[str]) -> str:
    """``dict`` (``fn(parameters)``, Katib's SDK) or ``kwargs`` (``fn(x=…, y=…)``, when the
    function's arguments are the parameters' names)."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return "dict"
    named = [p for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    takes_any = any(p.kind == p.VAR_KEYWORD for p in params)
    required = [p.name for p in named if p.default is p.empty]
    if len(params) == 1 and named and named[0].name not in names:
        return "dict"
    if all(n.isidentifier() for n in names) and set(required) <= set(names) \
            and (takes_any or set(names) <= {p.name for p in named}):
        return "kwargs"
    raise KatibError(f"the objective {getattr(fn, '__name__', fn)!r} must take one argument (the parameters as a "
                     f"dict) or keyword arguments named after the parameters ({', '.join(names)})")


def outside_names(fn: Callable[..., Any]) -> list[str]:
    """What ``fn`` uses from outside its body, each named with what it is: closure
    variables, and globals (notebook variables, imports, helpers), itself excepted."""
    if not isinstance(fn, types.FunctionType):
        return []
    out = []
    for name, cell in zip(fn.__code__.co_freevars, fn.__closure__ or (), strict=False):
        try:
            value = cell.cell_contents
        except ValueError:
            continue
        out.append(f"{name} ({_what(value)}, from an enclosing function)")
    for name in sorted(_globals_used(fn.__code__)):
        if name in fn.__globals__:
            value = fn.__globals__[name]
            if value is not fn:
                out.append(f"{name} ({_what(value)})")
    return out


def _globals_used(code: types.CodeType) -> set[str]:
    names = {ins.argval for ins in dis.get_instructions(code)
             if ins.opname in ("LOAD_GLOBAL", "LOAD_NAME", "STORE_GLOBAL", "DELETE_GLOBAL")}
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _globals_used(const)
    return {n for n in names if isinstance(n, str)}


def _what(value: Any) -> str:
    if isinstance(value, types.ModuleType):
        return f"the module {value.__name__}"
    if isinstance(value, (types.FunctionType, types.BuiltinFunctionType)):
        return "a function"
    if isinstance(value, type):
        return "a class"
    return f"a {type(value).__name__}"


def standalone_source(fn: Callable[..., Any]) -> tuple[str | None, str]:
    """The function's source if it can run alone in a fresh Python, else ``None`` and why."""
    name = getattr(fn, "__name__", "")
    if not isinstance(fn, types.FunctionType):
        return None, f"{type(fn).__name__} is not a plain function"
    if name == "<lambda>":
        return None, "a lambda has no source of its own"
    try:
        source = textwrap.dedent(inspect.getsource(fn))
    except (OSError, TypeError):
        return None, "its source is not available"
    if source.lstrip().startswith("@"):
        return None, "it is decorated"
    outside = outside_names(fn)
    if outside:
        return None, "it uses from outside its body: " + "; ".join(outside)
    return source, ""


def trial_program() -> str:
    """The trial's program: ``katib._trialmain``'s source, run with ``python3 -c``."""
    from . import _trialmain

    return inspect.getsource(_trialmain)


def ship(fn: Callable[..., Any], parameters: dict[str, Any], metric: str, collector: str,
         payload_dir: Path | None) -> Shipment:
    """Everything ``tune`` needs to run ``fn`` as a trial. ``payload_dir``: where a pickle too
    large to go inline may be written (a local store's runs); ``None`` refuses such a one."""
    if not callable(fn):
        raise KatibError(f"the objective must be a function (got {type(fn).__name__})")
    parameters, constants = searched(parameters)
    style = call_style(fn, [*parameters, *constants])
    names = list(parameters)
    payload = _pickle(fn)
    source, why = standalone_source(fn)
    plan: dict[str, Any] = {
        "function": getattr(fn, "__name__", "objective"), "python": list(sys.version_info[:2]),
        "payload": None, "payload_file": None, "source": source, "why": why,
        "params": [[n, k] for n, k in kinds(parameters).items()], "constants": constants, "call": style,
        "metric": metric, "collector": collector,
    }
    payload_file = None
    if len(payload) <= INLINE_LIMIT:
        plan["payload"] = base64.b64encode(payload).decode()
    elif payload_dir is None:
        raise KatibError(
            f"the objective {plan['function']!r} with what it captures is {len(payload) // 1024} KiB compressed; "
            f"through a katib server it may be {INLINE_LIMIT // 1024} KiB: load large data inside the function "
            f"(or run it with an embedded KatibClient()). Largest: {', '.join(_largest(fn)) or 'its own code'}")
    else:
        payload_file = payload_dir / "function.pickle"
        plan["payload_file"] = str(payload_file)
    values = [f"${{trialParameters.{n}}}" for n in names]
    annotation = json.dumps({"function": plan["function"], "portable": source is not None, "why": why,
                             **({"constants": constants} if constants else {})})
    return Shipment(["python3", "-u", "-c", trial_program(), json.dumps(plan), *values], annotation, payload,
                    payload_file)


def _pickle(fn: Callable[..., Any]) -> bytes:
    """``fn`` pickled by value (its module too, unless it is an installed package's)."""
    import cloudpickle

    module = sys.modules.get(getattr(fn, "__module__", "") or "")
    by_value = module is not None and module.__name__ != "__main__" and not _installed(module)
    if by_value:
        cloudpickle.register_pickle_by_value(module)
    try:
        return zlib.compress(cloudpickle.dumps(fn))
    except Exception as exc:
        culprit = next(_unpicklable(fn), None)
        raise KatibError(f"the objective {getattr(fn, '__name__', fn)!r} cannot travel to its trials"
                         f"{': it uses ' + culprit if culprit else ''} ({type(exc).__name__}: {exc})") from None
    finally:
        if by_value:
            cloudpickle.unregister_pickle_by_value(module)


def _installed(module: types.ModuleType) -> bool:
    path = getattr(module, "__file__", None)
    if not path:
        return True
    roots = {sysconfig.get_paths()[k] for k in ("purelib", "platlib", "stdlib")}
    return any(Path(path).resolve().is_relative_to(Path(r).resolve()) for r in roots)


def _outside_values(fn: Callable[..., Any]) -> Iterator[tuple[str, Any]]:
    if not isinstance(fn, types.FunctionType):
        return
    for name, cell in zip(fn.__code__.co_freevars, fn.__closure__ or (), strict=False):
        try:
            yield name, cell.cell_contents
        except ValueError:
            continue
    for name in sorted(_globals_used(fn.__code__)):
        if name in fn.__globals__ and fn.__globals__[name] is not fn and not hasattr(builtins, name):
            yield name, fn.__globals__[name]


def _unpicklable(fn: Callable[..., Any]) -> Iterator[str]:
    import cloudpickle

    for name, value in _outside_values(fn):
        try:
            cloudpickle.dumps(value)
        except Exception:
            yield f"{name} ({_what(value)}), which cannot be pickled"


def _largest(fn: Callable[..., Any], count: int = 3) -> list[str]:
    import cloudpickle

    sizes = []
    for name, value in _outside_values(fn):
        try:
            sizes.append((len(zlib.compress(cloudpickle.dumps(value))), name))
        except Exception:
            continue
    return [f"{name} ({size // 1024} KiB)" for size, name in sorted(sizes, reverse=True)[:count]]


def executor_errors(annotations: dict[str, str] | None, executor: str) -> list[FieldError]:
    """Before the first trial: a function whose source cannot run alone cannot run where the
    executor runs trials in another image, as Kubernetes pods (no cloudpickle copy can load
    there)."""
    raw = (annotations or {}).get(ANNOTATION)
    if not raw:
        return []
    from trials import executor_class

    if executor_class(executor).shares_environment:  # what the executor says (Executor.shares_environment)
        return []
    try:
        info = json.loads(raw)
    except ValueError:
        return []
    if info.get("portable"):
        return []
    return [FieldError(
        "spec.trialTemplate.trialSpec",
        f"the function {info.get('function')!r} would run in another image (the {executor} executor's), where only its "
        f"source can travel, and its source cannot run alone: {info.get('why')}. Make it self-contained: import "
        "inside it, define its helpers inside it, pass data through its parameters or files",
    )]
