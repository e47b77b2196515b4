"""The GJSON path forms Katib's ``successCondition`` / ``failureCondition`` use, evaluated
over a job object: a condition holds when the path finds an object or a non-empty array,
as Katib's ``GetDeployedJobStatus`` asks (``IsObject() || IsArray() && len > 0``): a plain
value found (``status.succeeded``, a condition's ``"False"``) does not count.

Supported: dotted keys (``status.phase``), array indexes (``items.0``), ``#`` (length),
queries ``#(key=="v")`` (first match) and ``#(key=="v")#`` (all matches) with ``==``,
``!=``, ``<``, ``<=``, ``>``, ``>=`` and ``%`` (glob), a bare value test ``#(=="v")``, the
``[@this]`` and ``@this`` modifiers, and ``|`` pipes. Over an array of matches, a following
key maps over its elements, as GJSON does after ``#(…)#``.

>>> job = {"status": {"conditions": [{"type": "Complete", "status": "True"}]}}
>>> holds(job, 'status.conditions.#(type=="Complete")#|#(status=="True")#')
True
>>> holds(job, 'status.conditions.#(type=="Failed")#|#(status=="True")#')
False
>>> holds(job, 'status.conditions.0.status')  # a string, not a condition
False
"""

from __future__ import annotations

import fnmatch
import json
import re
from typing import Any

_MISSING = object()
_QUERY = re.compile(r"^#\((?P<key>[^=!<>%]*?)\s*(?P<op>==|!=|<=|>=|<|>|%)\s*(?P<value>.+?)\)(?P<all>#?)$")


def get(document: Any, path: str) -> Any:
    """The value ``path`` finds in ``document``, or ``None``."""
    value = _get(document, path)
    return None if value is _MISSING else value


def holds(document: Any, path: str) -> bool:
    value = _get(document, path)
    return isinstance(value, dict) or (isinstance(value, list) and len(value) > 0)


def _get(document: Any, path: str) -> Any:
    current = document
    for segment in _split(path, "|"):
        current = _walk(current, _split(segment, "."), mapping=False)
        if current is _MISSING:
            return _MISSING
    return current


def _split(text: str, sep: str) -> list[str]:
    """Split on ``sep`` outside parentheses, brackets and quotes."""
    parts, depth, quote, start = [], 0, False, 0
    for i, ch in enumerate(text):
        if ch == '"' and (i == 0 or text[i - 1] != "\\"):
            quote = not quote
        elif not quote and ch in "([":
            depth += 1
        elif not quote and ch in ")]":
            depth -= 1
        elif not quote and depth == 0 and ch == sep:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p for p in parts if p != ""]


def _walk(current: Any, keys: list[str], mapping: bool) -> Any:
    for n, key in enumerate(keys):
        if current is _MISSING:
            return _MISSING
        if mapping and isinstance(current, list) and not key.startswith("#"):
            found = [_walk(item, keys[n:], mapping=False) for item in current]
            return [f for f in found if f is not _MISSING]
        if key in ("@this", ""):
            continue
        if key == "[@this]":
            current = [current]
            continue
        m = _QUERY.match(key)
        if m:
            if not isinstance(current, list):
                return _MISSING
            matches = [item for item in current if _matches(item, m["key"], m["op"], m["value"])]
            if m["all"]:
                current, mapping = matches, True
            else:
                current = matches[0] if matches else _MISSING
            continue
        if key == "#":
            current = len(current) if isinstance(current, list) else _MISSING
            continue
        if isinstance(current, dict):
            current = current.get(key.replace("\\.", "."), _MISSING)
        elif isinstance(current, list) and key.isdigit():
            current = current[int(key)] if int(key) < len(current) else _MISSING
        else:
            return _MISSING
    return current


def _literal(text: str) -> Any:
    text = text.strip()
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _matches(item: Any, key: str, op: str, raw: str) -> bool:
    value = item if not key.strip() else _get(item, key.strip())
    if value is _MISSING:
        return False
    want = _literal(raw)
    if op == "%":
        return isinstance(value, str) and fnmatch.fnmatchcase(value, str(want))
    if op in ("==", "!="):
        equal = value == want or (isinstance(value, bool) is False and str(value) == str(want) and not isinstance(want, str))
        return equal if op == "==" else not equal
    try:
        a, b = (float(value), float(want)) if not isinstance(want, str) else (str(value), want)
    except (TypeError, ValueError):
        return False
    return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]  # type: ignore[operator]
