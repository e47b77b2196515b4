"""The GJSON paths of Katib's ``successCondition`` / ``failureCondition``, evaluated over a
job object as Katib evaluates them (tidwall/gjson v1.14.1, which Katib vendors, and its
``GetDeployedJobStatus``).

A condition holds when the path finds an object, or a non-empty array whose first element
is an object: Katib reads that object as the job's condition (its reason and message), so
a plain value found (``status.succeeded``, a condition's ``"False"``, ``["True"]``) does not
end a trial (Katib fails to read it, and leaves the trial as it was).

Supported, as GJSON reads them:
- keys separated by ``.`` (a ``\\`` escapes a ``.``, ``*`` or ``?``), with ``*`` and ``?``
  wildcards (the first key that matches), and array indexes (``items.0``);
- ``#``: an array's length, or, followed by a key (``conditions.#.type``), that key of every
  element;
- queries ``#(path op value)`` (the first match) and ``#(…)#`` (every match), also written
  with brackets (``#[…]``); ``op`` is ``==`` (or ``=``), ``!=``, ``<``, ``<=``, ``>``,
  ``>=``, ``%`` (glob) or ``!%``; without one (``#(reason)``) the query asks that the path
  exists. A quoted value is a string; either way it is compared by the type of the
  document's value (``#(succeeded=="1")`` matches the number 1, ``#(ready==true)`` the
  boolean), and a value starting ``~`` compares the document's value as a boolean;
- the ``@this`` and ``[@this]`` modifiers, and ``|`` pipes: after ``#(…)#`` a ``.`` key maps
  over the matches, a ``|`` applies to the array of them.

Anything else GJSON has (other modifiers, multipaths, literals, JSON lines) is refused when
the experiment is admitted (``path_problem``), not read as a condition that never holds.

>>> job = {"status": {"conditions": [{"type": "Complete", "status": "True"}]}}
>>> holds(job, 'status.conditions.#(type=="Complete")#|#(status=="True")#')
True
>>> holds(job, 'status.conditions.#(type=="Failed")#|#(status=="True")#')
False
>>> holds(job, 'status.conditions.0.status')  # a string, not a condition
False
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

_MISSING = object()
_OPS = ("!=", "!%", "<=", ">=", "==", "<", ">", "=", "%")


@dataclass(frozen=True)
class _Query:
    path: str
    op: str  # "" (exists), "=", "!=", "<", "<=", ">", ">=", "%", "!%"
    value: str
    all: bool


def get(document: Any, path: str) -> Any:
    """The value ``path`` finds in ``document``, or ``None``."""
    value = _get(document, path)
    return None if value is _MISSING else value


def holds(document: Any, path: str) -> bool:
    """Whether ``path`` finds a condition in ``document``, as Katib judges one: an object,
    or a non-empty array whose first element is an object."""
    value = _get(document, path)
    return isinstance(value, dict) or (isinstance(value, list) and bool(value) and isinstance(value[0], dict))


def found(document: Any, path: str) -> dict[str, Any] | None:
    """The condition ``path`` finds, as Katib reads it (an object, or an array's first
    element when that is one): its ``reason`` and ``message`` are the job's. None: none."""
    value = _get(document, path)
    if isinstance(value, list) and value:
        value = value[0]
    return value if isinstance(value, dict) else None


def unreadable(document: Any, path: str) -> Any:
    """What ``path`` finds that Katib's check counts as a condition but cannot read as one
    (a non-empty array whose first element is not an object), or None."""
    value = _get(document, path)
    return value if isinstance(value, list) and value and not isinstance(value[0], dict) else None


MAX_PATH = 4096  # characters: Katib's default conditions are 60
MAX_DEPTH = 16  # queries within queries' paths


def path_problem(path: str, depth: int = 0) -> str:
    """Why ``path`` is not a condition this reads as GJSON does, or "" when it is."""
    if not path.strip():
        return "is empty"
    if len(path) > MAX_PATH:
        return f"is longer than {MAX_PATH} characters"
    if depth > MAX_DEPTH:
        return f"nests queries in queries' paths more than {MAX_DEPTH} deep"
    if path.startswith(".."):
        return "is a JSON-lines path ('..'), which a job object is not"
    try:
        for segment in _split(path, "|"):
            keys = _split(segment, ".")
            for key in keys:
                _check_key(key, depth)
    except ValueError as exc:
        return str(exc)
    return ""


def _check_key(key: str, depth: int) -> None:
    if key in ("@this", "[@this]", "#") or key.isdigit():
        return
    if key.startswith("#(") or key.startswith("#["):
        query = _query(key)
        if query is None:
            raise ValueError(f"has a query that does not parse: {key!r}")
        if query.path:
            problem = path_problem(query.path, depth + 1)
            if problem:
                raise ValueError(f"has a query whose path {query.path!r} {problem}")
        return
    if key.startswith("@"):
        raise ValueError(f"uses the GJSON modifier {key.split(':')[0]!r}; only @this and [@this] are read here")
    if key[:1] in "[{" or key.startswith("!"):
        raise ValueError(f"uses a GJSON multipath or literal ({key!r}); only [@this] is read here")
    if _count_unescaped(key, "()") or _count_unescaped(key, '"'):
        raise ValueError(f"has an unbalanced or misplaced parenthesis or quote in {key!r}")


def _count_unescaped(text: str, chars: str) -> int:
    """How many of ``text``'s characters are in ``chars``, not counting escaped ones."""
    n, i = 0, 0
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        n += text[i] in chars
        i += 1
    return n


def _get(document: Any, path: str) -> Any:
    current = document
    for segment in _split(path, "|"):
        current = _walk(current, _split(segment, "."), mapping=False)
        if current is _MISSING:
            return _MISSING
    return current


def _split(text: str, sep: str) -> list[str]:
    """Split on ``sep`` outside parentheses, brackets and quotes, and not escaped."""
    parts, depth, quote, start, i = [], 0, False, 0, 0
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == '"' and depth > 0:
            quote = not quote
        elif not quote and ch in "([":
            depth += 1
        elif not quote and ch in ")]":
            depth -= 1
        elif not quote and depth == 0 and ch == sep:
            parts.append(text[start:i])
            start = i + 1
        i += 1
    parts.append(text[start:])
    return [p for p in parts if p != ""]


def _walk(current: Any, keys: list[str], mapping: bool) -> Any:
    for n, key in enumerate(keys):
        if current is _MISSING:
            return _MISSING
        if mapping and isinstance(current, list):  # after #(…)#. the rest of the path is each match's
            found = [_walk(item, keys[n:], mapping=False) for item in current]
            return [f for f in found if f is not _MISSING]
        if key in ("@this", ""):
            continue
        if key == "[@this]":
            current = [current]
            continue
        if key.startswith("#(") or key.startswith("#["):
            query = _query(key)
            if query is None or not isinstance(current, list):
                return _MISSING
            matches = [item for item in current if _matches(item, query)]
            if query.all:
                current, mapping = matches, True
            else:
                current = matches[0] if matches else _MISSING
            continue
        if key == "#":
            if not isinstance(current, list):
                return _MISSING
            if n + 1 < len(keys):  # ``#.key``: that key of every element
                found = [_walk(item, keys[n + 1:], mapping=False) for item in current]
                return [f for f in found if f is not _MISSING]
            current = len(current)
            continue
        if isinstance(current, dict):
            current = _member(current, key)
        elif isinstance(current, list) and key.isdigit():
            current = current[int(key)] if int(key) < len(current) else _MISSING
        else:
            return _MISSING
    return current


def _member(obj: dict[str, Any], key: str) -> Any:
    """``obj``'s member named by ``key``: escapes taken literally, and where ``key`` holds an
    unescaped ``*`` or ``?``, the first member whose name matches it."""
    if _count_unescaped(key, "*?"):
        return next((v for k, v in obj.items() if _glob_match(key, k)), _MISSING)
    return obj.get(_unescape(key), _MISSING)


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text, flags=re.DOTALL)


# How much wildcard matching one comparison may cost: the text's length times the
# pattern's (RE2's worst case, about 5 ns a cell here: 0.1 s). GJSON calls tidwall/match's
# MatchLimit (10,000 steps per character of the text), which answers "no match" to a
# comparison too complex to decide; so does this.
MATCH_BUDGET = 20_000_000


def _glob_match(pattern: str, text: str) -> bool:
    """tidwall/match's pattern (``*`` any run, ``?`` one character, ``\\`` escapes) against
    ``text`` whole, decided by RE2 in time bounded by the text's and the pattern's lengths:
    Python's backtracking ``re`` took seconds on ``*a*a*a…*b`` over a short image name,
    holding the server."""
    if pattern and not pattern.strip("*"):
        return True  # only stars: anything, as tidwall/match says at once
    if (len(pattern) - len(pattern.rstrip("\\"))) % 2:
        return False  # a trailing escape escapes nothing: no match, as in Go
    if len(text) * max(len(pattern), 1) > MATCH_BUDGET:
        return False
    try:
        return _glob(pattern).fullmatch(text) is not None
    except UnicodeEncodeError:  # a lone surrogate, which no UTF-8 text (GJSON's) holds
        return False


@functools.lru_cache(maxsize=256)
def _glob(pattern: str) -> Any:
    import re2

    out, i = ["(?s)"], 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            out.append(_literal(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if ch == "*" else "." if ch == "?" else _literal(ch))
        i += 1
    options = re2.Options()
    options.log_errors = False
    return re2.compile("".join(out), options=options)


def _literal(ch: str) -> str:
    return ch if ch.isalnum() else f"\\x{{{ord(ch):x}}}"


def _query(key: str) -> _Query | None:
    """GJSON's ``parseQuery`` (and ``parseArrayPath``'s quote stripping) of ``#(…)`` / ``#[…]``
    followed by nothing or ``#``."""
    if len(key) < 2 or key[0] != "#" or key[1] not in "([":
        return None
    i, j, depth = 2, 0, 1
    while i < len(key):
        ch = key[i]
        if depth == 1 and j == 0 and ch in "!=<>%":
            j = i
            i += 1
            continue
        if ch == "\\":
            i += 1
        elif ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
            if depth == 0:
                break
        elif ch == '"':
            i += 1
            while i < len(key) and key[i] != '"':
                i += 2 if key[i] == "\\" else 1
        i += 1
    if depth > 0:
        return None
    rest = key[i + 1:]
    if rest not in ("", "#"):
        return None
    if j == 0:
        return _Query(key[2:i].strip(), "", "", rest == "#")
    path, text = key[2:j].strip(), key[j:i].strip()
    op = next((o for o in _OPS if text.startswith(o)), "")
    value = text[len(op):].strip()
    op = "=" if op == "==" else op
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        value = _unescape(value[1:-1])
    return _Query(path, op, value, rest == "#")


def _truthy(value: Any) -> bool:
    """GJSON's ``Result.Bool``."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return value.lower() in ("1", "t", "true")
    if isinstance(value, (int, float)):
        return value != 0
    return False


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return 0.0


def _matches(item: Any, q: _Query) -> bool:
    """GJSON's ``queryMatches``: compared by the type of the document's value."""
    value = _get(item, q.path) if q.path else item
    want = q.value
    if want.startswith("~"):
        want, value = want[1:], _truthy(None if value is _MISSING else value)
    if value is _MISSING:
        return False
    if not q.op:
        return True
    if isinstance(value, bool):
        table = {True: {"=": want == "true", "!=": want != "true", ">": want == "false", ">=": True},
                 False: {"=": want == "false", "!=": want != "false", "<": want == "true", "<=": True}}
        return table[value].get(q.op, False)
    if isinstance(value, str):
        if q.op in ("%", "!%"):
            return _glob_match(want, value) == (q.op == "%")
        a, b = value.encode(), want.encode()  # Go compares strings byte by byte
        return {"=": a == b, "!=": a != b, "<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[q.op]
    if isinstance(value, (int, float)):
        x, y = float(value), _number(want)
        return {"=": x == y, "!=": x != y, "<": x < y, "<=": x <= y, ">": x > y, ">=": x >= y}.get(q.op, False)
    return False
