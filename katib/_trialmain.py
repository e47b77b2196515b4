"""The trial side of ``KatibClient.tune(fn)``: run the function with typed parameters and
report what it returns.

This module's *source* is the trial's program (``python3 -u -c <this file> <plan> <values…>``),
so it needs nothing but the standard library: in a Kubernetes pod of another image there may
be no katib and no cloudpickle. ``<plan>`` is JSON (see ``katib._function.plan``); the values
are the trial's parameter assignments, in the plan's order, as Katib renders them (text).

Where the function travelled with cloudpickle (the same environment: this machine, Ray) and
this Python can load it, that copy runs: closures, notebook globals and helpers come with
it. Otherwise its source runs, which the client allowed only for a self-contained function.

A returned number is the objective metric, a returned dict of numbers is the metrics, both
printed as ``name=value`` (Katib's StdOut format) or pushed with ``katib.report_metrics``
(``Push``); ``None`` reports nothing (the function printed or pushed on its own).
"""

from __future__ import annotations

import base64
import json
import math
import sys
import zlib
from typing import Any


def typed(value: str, kind: str) -> Any:
    """A parameter's text as the type the search space gives it."""
    if kind == "int":
        number = float(value)
        return int(number) if number.is_integer() else number
    if kind == "float":
        return float(value)
    return value


def metrics_of(result: Any, metric: str) -> dict[str, float]:
    """What a function returned, as metrics; ``TypeError`` saying what was wrong."""
    if result is None:
        return {}
    if isinstance(result, dict):
        items = list(result.items())
    elif _is_number(result):
        items = [(metric, result)]
    else:
        raise TypeError(f"the objective returned {type(result).__name__}; return a number (the objective "
                        f"metric {metric!r}), a dict of numbers (metric name -> value) or None")
    out: dict[str, float] = {}
    for name, value in items:
        if not _is_number(value):
            raise TypeError(f"metric {name!r} must be a number (the objective returned {value!r})")
        number = float(value)
        if not math.isfinite(number):
            raise TypeError(f"metric {name!r} must be finite (the objective returned {value!r})")
        out[str(name)] = number
    return out


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return not isinstance(value, (str, bytes))


def report(metrics: dict[str, float], collector: str) -> None:
    if not metrics:
        return
    if collector != "Push":
        import re

        for name in metrics:
            if not re.fullmatch(r"[A-Za-z0-9_|-]+", name):  # Katib's StdOut filter (RE2: \w is ASCII) would not read it whole
                raise SystemExit(f"katib: metric {name!r} cannot be reported on the trial's output: Katib's StdOut "
                                 "filter reads names of letters, digits, '_', '-' and '|'; rename it, or "
                                 "tune(..., metrics_collector='Push')")
    if collector == "Push":
        import katib

        katib.report_metrics(metrics)
    else:
        for name, value in metrics.items():
            print(f"{name}={value!r}", flush=True)


def load_shipped(plan: dict[str, Any]) -> Any:
    """The function as cloudpickle shipped it; ``None`` where this Python cannot load it."""
    if tuple(plan.get("python") or ()) != tuple(sys.version_info[:2]):
        return None
    try:
        import cloudpickle
    except ImportError:
        return None
    if plan.get("payload"):
        data = base64.b64decode(plan["payload"])
    elif plan.get("payload_file"):
        try:
            with open(plan["payload_file"], "rb") as f:
                data = f.read()
        except OSError:
            return None
    else:
        return None
    try:
        return cloudpickle.loads(zlib.decompress(data))
    except Exception as exc:  # a module it needs is not here (an image with cloudpickle but not katib)
        if not plan.get("source"):
            raise
        print(f"katib: the pickled function does not load here ({type(exc).__name__}: {exc}); running its source",
              file=sys.stderr)
        return None


def load_source(plan: dict[str, Any]) -> Any:
    source = plan.get("source")
    if not source:
        raise SystemExit(f"katib: cannot run {plan.get('function')!r} here: it travelled with cloudpickle, which "
                         f"needs Python {'.'.join(map(str, plan.get('python') or ()))} with cloudpickle (this is "
                         f"{sys.version.split()[0]}) and the modules it uses, and its source cannot run alone: "
                         f"{plan.get('why')}")
    namespace: dict[str, Any] = {"__name__": "__katib_trial__"}
    exec(compile(source, f"<{plan['function']}>", "exec"), namespace)
    return namespace[plan["function"]]


def main(argv: list[str]) -> None:
    plan = json.loads(argv[0])
    fn = load_shipped(plan)
    if fn is None:
        fn = load_source(plan)
    values = {name: typed(text, kind) for (name, kind), text in zip(plan["params"], argv[1:], strict=True)}
    values.update(plan.get("constants") or {})
    try:
        result = fn(**values) if plan.get("call") == "kwargs" else fn(values)
    except Exception as exc:  # the function's own frames only: this program's are noise to its author
        import traceback

        traceback.print_exception(type(exc), exc, exc.__traceback__.tb_next if exc.__traceback__ else None)
        raise SystemExit(1) from None
    try:
        metrics = metrics_of(result, plan["metric"])
    except TypeError as exc:
        raise SystemExit(f"katib: {exc}") from None
    report(metrics, plan.get("collector", "StdOut"))


if __name__ == "__main__":
    main(sys.argv[1:])
