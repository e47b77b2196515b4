"""Kubernetes list selectors: ``labelSelector`` (``a=b`` and ``e in (f, g)``, what the Katib
and Kubeflow SDKs send) and ``fieldSelector`` (``field=value``, ``field==value`` and
``field!=value`` on the fields a kind supports, what ``kubectl`` sends to get, wait for,
delete and describe one object)."""

from __future__ import annotations

import re
from typing import Any

from fastapi import Request

from katib.errors import FieldError, NotAllowedError, ValidationError

from ._documents import delete_options

_SET_SELECTOR = re.compile(r"^\s*([^\s=!,()]+)\s+in\s+\(([^()]*)\)\s*$")


MAX_SELECTOR = 4096  # characters of a labelSelector or fieldSelector: a few hundred terms

Labels = dict[str, str | frozenset[str]]
# A field selector: (dotted field, wanted value, True for = and ==, False for !=).
Fields = list[tuple[str, str, bool]]

# The fields each kind may be selected by, as the Kubernetes API server allows them: every
# object's name and namespace; an event's involved object, reason, source and type (what
# ``kubectl describe`` asks for); a pod's phase.
_META = frozenset({"metadata.name", "metadata.namespace"})
FIELDS = {
    "Experiment": _META, "Trial": _META, "Suggestion": _META,
    "Event": _META | {f"involvedObject.{f}" for f in ("kind", "namespace", "name", "uid", "apiVersion",
                                                     "resourceVersion", "fieldPath")}
    | {"reason", "reportingComponent", "source", "type"},
    "Pod": _META | {"status.phase", "spec.nodeName", "spec.restartPolicy", "spec.schedulerName",
                    "spec.serviceAccountName", "status.podIP", "status.nominatedNodeName"},
}


def _terms(text: str) -> list[str]:
    """``text`` split at the commas outside parentheses, in one pass (a look-ahead regex
    re-read the rest of the string at every comma: seconds for one long selector, with
    the interpreter's lock held)."""
    terms, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth = max(0, depth - 1)
        elif ch == "," and depth == 0:
            terms.append(text[start:i])
            start = i + 1
    terms.append(text[start:])
    return terms


def _bounded(name: str, text: str | None) -> None:
    if text and len(text) > MAX_SELECTOR:
        raise ValidationError([FieldError(name, f"must be at most {MAX_SELECTOR} characters (got {len(text)})")], "request")


def labels(label_selector: str | None) -> Labels:
    """``a=b,c=d`` and ``e in (f, g)`` (the selectors the Katib and Kubeflow SDKs send)."""
    out: Labels = {}
    _bounded("labelSelector", label_selector)
    for part in _terms(label_selector or ""):
        if not part.strip():
            continue
        found = _SET_SELECTOR.match(part)
        wanted: str | frozenset[str]
        if found:
            key, wanted = found.group(1), frozenset(v.strip() for v in found.group(2).split(",") if v.strip())
        else:
            key, sep, value = part.partition("=")
            if not sep or key.rstrip().endswith("!"):
                raise ValidationError([FieldError("labelSelector", f"only key=value and key in (a, b) selectors are supported (got {part!r})")], "request")
            key, wanted = key.strip(), value.lstrip("=").strip()
        if key in out:  # every term holds: a key named twice keeps the values both allow
            before = out[key]
            both = (frozenset([before]) if isinstance(before, str) else before) & (
                frozenset([wanted]) if isinstance(wanted, str) else wanted)
            wanted = next(iter(both)) if len(both) == 1 and isinstance(before, str) else both
        out[key] = wanted
    return out


def labels_match(have: dict[str, str], selector: Labels) -> bool:
    return all(have.get(k) in v if isinstance(v, frozenset) else have.get(k) == v for k, v in selector.items())


def fields(field_selector: str | None, kind: str) -> Fields:
    """``field=value``, ``field==value`` and ``field!=value`` terms, comma-separated, on the
    fields ``kind`` supports (``FIELDS``); any other field is refused, as Kubernetes
    refuses it ("field label not supported")."""
    _bounded("fieldSelector", field_selector)
    out: Fields = []
    for part in (field_selector or "").split(","):
        if not part.strip():
            continue
        op = next((o for o in ("!=", "==", "=") if o in part), None)
        if op is None:
            raise ValidationError([FieldError("fieldSelector", f"each term is field=value, field==value or field!=value (got {part!r})")], "request")
        field, _, value = part.partition(op)
        equal = op != "!="
        field = field.strip()
        if field not in FIELDS.get(kind, _META):
            allowed = ", ".join(sorted(FIELDS.get(kind, _META)))
            raise ValidationError([FieldError("fieldSelector", f"field label not supported for {kind}: {field!r} (supported: {allowed})")],
                                  "request")
        out.append((field, value.strip(), equal))
    return out


def _field(obj: dict[str, Any], dotted: str) -> str:
    value: Any = obj
    for key in dotted.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    if key == "source" and isinstance(value, dict):  # an event's source is its component
        value = value.get("component")
    return "" if value is None else str(value)


def fields_match(obj: dict[str, Any], selector: Fields) -> bool:
    return all((_field(obj, f) == v) == equal for f, v, equal in selector)


def paging_key(label_selector: str | None, field_selector: str | None) -> str | None:
    """What a continue token is bound to: the label selector as before, and the field
    selector beside it when there is one."""
    if not field_selector:
        return label_selector
    return f"{label_selector or ''}\x00{field_selector}"


# What a Kubernetes client may send, and would be wrong to have ignored: a selector a
# route does not apply would widen what it lists (and kubectl deletes what it lists), a
# watch it does not serve would answer a list where a stream is read, and a dry run it
# does not honour would make the change (kubectl delete --dry-run=server deleted).
_LIST_PARAMS = ("labelSelector", "fieldSelector", "watch", "sendInitialEvents", "dryRun")


def _query_names(dependant: Any) -> set[str]:
    names = {f.alias for f in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


async def refuse_unapplied(request: Request) -> None:
    """Router dependency: a ``labelSelector``, ``fieldSelector``, ``watch`` or ``dryRun``
    sent to a route that does not take it is a 422 naming it, not silently dropped; so is
    a delete's ``dryRun`` or ``preconditions`` (in its DeleteOptions body) where the route
    does not take ``dryRun``."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return
    path = getattr(route, "path", request.url.path)
    if request.method == "DELETE" and "dryRun" not in _query_names(dependant):
        options = await delete_options(request)
        for name in ("dryRun", "preconditions"):
            if options.get(name):
                raise ValidationError([FieldError(name, f"DELETE {path} takes no {name} here: nothing was deleted")],
                                      "request")
    if not any(p in request.query_params for p in _LIST_PARAMS):
        return
    taken = _query_names(dependant)
    for param in _LIST_PARAMS:
        if param in request.query_params and param not in taken:
            if param == "watch":  # 405, which kubectl prints (it reads no body of a watch's error)
                raise NotAllowedError(f"{path} cannot be watched here")
            if param == "sendInitialEvents":  # client-go's watch-list: it lists and watches instead
                raise ValidationError([FieldError(param, "streamed initial events are not served here; list, then watch")],
                                      "request")
            if param == "dryRun":
                raise ValidationError([FieldError(param, f"{request.method} {path} has no dry run here: nothing was done")],
                                      "request")
            raise ValidationError([FieldError(param, f"{path} cannot be selected by {param} here")], "request")
