"""JSON Patch (RFC 6902), as ``kubectl patch --type=json`` sends it: ``add``, ``remove``,
``replace``, ``move``, ``copy`` and ``test`` on JSON Pointers (RFC 6901). The patch is
applied to a copy; a bad operation is a 422 naming the operation by its index."""

from __future__ import annotations

import copy
from typing import Any

from katib.errors import FieldError, ValidationError

OPS = ("add", "remove", "replace", "move", "copy", "test")
# The most values a patched document may hold, as a document sent whole may (katib.spec):
# a copy doubles what it copies, so twenty small operations could otherwise build 2**20
# copies of an experiment.
MAX_NODES = 100_000
MAX_DEPTH = 64  # nor nest deeper than a document sent whole may (a copy into itself doubles the depth)


class _Bad(Exception):
    pass


def _pointer(text: Any) -> list[str]:
    if not isinstance(text, str) or (text and not text.startswith("/")):
        raise _Bad(f"a path is a JSON Pointer, '' or starting with '/' (got {text!r})")
    return [p.replace("~1", "/").replace("~0", "~") for p in text.split("/")[1:]] if text else []


def _index(container: list[Any], token: str, adding: bool) -> int:
    if adding and token == "-":
        return len(container)
    if not token.isdigit() or (len(token) > 1 and token.startswith("0")):
        raise _Bad(f"{token!r} is not an index of a list")
    i = int(token)
    if i > len(container) or (i == len(container) and not adding):
        raise _Bad(f"index {i} is past the end of a list of {len(container)}")
    return i


def _parent(doc: Any, path: list[str]) -> Any:
    node = doc
    for token in path[:-1]:
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list):
            node = node[_index(node, token, adding=False)]
        else:
            raise _Bad(f"/{'/'.join(path)} does not exist")
    return node


def _get(doc: Any, path: list[str]) -> Any:
    if not path:
        return doc
    parent, last = _parent(doc, path), path[-1]
    if isinstance(parent, dict) and last in parent:
        return parent[last]
    if isinstance(parent, list):
        return parent[_index(parent, last, adding=False)]
    raise _Bad(f"/{'/'.join(path)} does not exist")


def _add(doc: Any, path: list[str], value: Any) -> Any:
    if not path:
        return value
    parent, last = _parent(doc, path), path[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, last, adding=True), value)
    else:
        raise _Bad(f"/{'/'.join(path[:-1])} is not an object or a list")
    return doc


def _remove(doc: Any, path: list[str]) -> tuple[Any, Any]:
    if not path:
        raise _Bad("the whole document cannot be removed")
    parent, last = _parent(doc, path), path[-1]
    if isinstance(parent, dict) and last in parent:
        return doc, parent.pop(last)
    if isinstance(parent, list):
        return doc, parent.pop(_index(parent, last, adding=False))
    raise _Bad(f"/{'/'.join(path)} does not exist")


def _count(value: Any, budget: int) -> int:
    """The values ``value`` holds (itself included), counting no further than ``budget``."""
    seen, stack = 0, [value]
    while stack and seen <= budget:
        node = stack.pop()
        seen += 1
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return seen


def _deeper_than(value: Any, levels: int) -> bool:
    """Whether ``value`` nests more than ``levels`` deep (a scalar is 0), looking no deeper."""
    stack = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (dict, list)):
            if depth + 1 > levels:
                return True
            stack.extend((child, depth + 1) for child in (node.values() if isinstance(node, dict) else node))
    return False


def _same(a: Any, b: Any) -> bool:
    """JSON equality (RFC 6902's ``test``): ``true`` is not ``1``, ``1`` is ``1.0``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _step(doc: Any, op: dict[str, Any]) -> Any:
    kind = op.get("op")
    if kind not in OPS:
        raise _Bad(f"op must be one of {', '.join(OPS)} (got {kind!r})")
    path = _pointer(op.get("path"))
    if kind in ("add", "replace", "test") and "value" not in op:
        raise _Bad(f"a {kind} needs a value")
    if kind == "add":
        return _add(doc, path, copy.deepcopy(op["value"]))
    if kind == "remove":
        return _remove(doc, path)[0]
    if kind == "replace":
        doc, _ = _remove(doc, path) if path else (doc, None)
        return _add(doc, path, copy.deepcopy(op["value"]))
    if kind == "test":
        if not _same(_get(doc, path), op["value"]):
            raise _Bad(f"{op.get('path')!r} is not {op['value']!r}")
        return doc
    source = _pointer(op.get("from"))
    if kind == "copy":
        return _add(doc, path, copy.deepcopy(_get(doc, source)))
    if path[: len(source)] == source and path != source:
        raise _Bad("a value cannot be moved into itself")
    doc, value = _remove(doc, source)
    return _add(doc, path, value)


def apply(doc: Any, patch: list[Any]) -> Any:
    """``doc`` with ``patch`` applied (``doc`` itself is left as it is)."""
    out = copy.deepcopy(doc)
    size = _count(out, MAX_NODES)
    for i, op in enumerate(patch):
        if not isinstance(op, dict):
            raise ValidationError([FieldError(f"[{i}]", f"an operation is an object (got {type(op).__name__})")], "patch")
        try:
            if op.get("op") == "copy":  # the one operation that grows the document past what was sent
                size += _count(_get(out, _pointer(op.get("from"))), MAX_NODES)
                if size > MAX_NODES:
                    raise _Bad(f"the patched document would hold more than {MAX_NODES} values")
            if op.get("op") in ("add", "replace", "copy", "move"):
                value = op.get("value") if op.get("op") in ("add", "replace") else _get(out, _pointer(op.get("from")))
                path = _pointer(op.get("path"))
                if len(path) > MAX_DEPTH or _deeper_than(value, MAX_DEPTH - len(path)):
                    raise _Bad(f"the patched document would nest deeper than {MAX_DEPTH} levels")
            out = _step(out, op)
        except _Bad as e:
            raise ValidationError([FieldError(f"[{i}]", f"{op.get('op')} {op.get('path')!r}: {e}")], "patch") from None
    return out
