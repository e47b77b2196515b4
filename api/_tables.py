"""Server-side printing: a ``meta.k8s.io/v1`` ``Table`` in place of an object or a list,
when the client asks for one in its ``Accept`` header, as ``kubectl get`` does. The
columns of Katib's objects are its CRDs' ``additionalPrinterColumns`` (Type and Status of
the last condition, and a Suggestion's Requested and Assigned); a pod's and an event's are
kubectl's usual ones. Any other kind is answered as it is, and kubectl prints its name
and age."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

TABLE_TYPE = "application/json;as=Table;v=v1;g=meta.k8s.io"
_NAME = {"name": "Name", "type": "string", "format": "name", "priority": 0,
         "description": "Name must be unique within a namespace."}


def wants_table(accept: str) -> bool:
    return any("as=table" in part.replace(" ", "").lower() and "g=meta.k8s.io" in part.replace(" ", "").lower()
               for part in accept.split(","))


def human_duration(seconds: float) -> str:
    """Kubernetes' ``duration.HumanDuration``, as kubectl shows an age."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m{s % 60}s" if s % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d{hours % 24}h" if hours % 24 else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        return f"{hours // 24 // 365}y{days}d" if days else f"{hours // 24 // 365}y"
    return f"{hours // 24 // 365}y"


def _age(stamp: Any) -> str:
    if not isinstance(stamp, str) or not stamp:
        return "<unknown>"
    try:
        at = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return "<unknown>"
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return human_duration((datetime.now(UTC) - at).total_seconds())


def _last_condition(field: str) -> Callable[[dict[str, Any]], Any]:
    def cell(obj: dict[str, Any]) -> Any:
        conditions = (obj.get("status") or {}).get("conditions") or []
        return conditions[-1].get(field) if conditions and isinstance(conditions[-1], dict) else None
    return cell


def _at(*path: str) -> Callable[[dict[str, Any]], Any]:
    def cell(obj: dict[str, Any]) -> Any:
        value: Any = obj
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        return value
    return cell


def _column(name: str, type_: str = "string", priority: int = 0) -> dict[str, Any]:
    return {"name": name, "type": type_, "format": "", "description": "", "priority": priority}


_AGE = (_column("Age", "date"), lambda o: _age(_at("metadata", "creationTimestamp")(o)))
_KATIB = [(_column("Type"), _last_condition("type")), (_column("Status"), _last_condition("status"))]


def _ready(pod: dict[str, Any]) -> str:
    return "1/1" if _at("status", "phase")(pod) == "Running" else "0/1"


def _involved(event: dict[str, Any]) -> str:
    obj = event.get("involvedObject") or {}
    return f"{str(obj.get('kind', '')).lower()}/{obj.get('name', '')}"


COLUMNS: dict[str, list[tuple[dict[str, Any], Callable[[dict[str, Any]], Any]]]] = {
    "Experiment": [*_KATIB, _AGE],
    "Trial": [*_KATIB, _AGE],
    "Suggestion": [*_KATIB, (_column("Requested"), _at("spec", "requests")),
                   (_column("Assigned"), _at("status", "suggestionCount")), _AGE],
    "Pod": [(_column("Ready"), _ready), (_column("Status"), _at("status", "phase")),
            (_column("Restarts", "integer"), lambda o: 0), _AGE],
    "Event": [(_column("Last Seen"), lambda o: _age(o.get("lastTimestamp") or o.get("firstTimestamp"))),
              (_column("Type"), _at("type")), (_column("Reason"), _at("reason")),
              (_column("Object"), _involved), (_column("Message"), _at("message"))],
}


def _row(obj: dict[str, Any], columns: list[tuple[dict[str, Any], Callable[[dict[str, Any]], Any]]],
         include: str) -> dict[str, Any]:
    """A row; its ``object`` as ``includeObject`` asks: the object's metadata (Kubernetes'
    default), the whole object (``Object``: what ``kubectl get --sort-by`` sorts by) or none."""
    meta = obj.get("metadata") or {}
    row: dict[str, Any] = {"cells": [meta.get("name", ""), *(cell(obj) for _, cell in columns)]}
    if include == "Object":
        row["object"] = obj
    elif include != "None":
        row["object"] = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": meta}
    return row


def to_table(doc: Any, with_columns: bool = True, include: str = "Metadata") -> dict[str, Any] | None:
    """``doc`` (an object, or a ``…List`` of them) as a Table; None for a kind without
    columns here."""
    if not isinstance(doc, dict) or not isinstance(doc.get("kind"), str):
        return None
    kind = doc["kind"]
    listed = kind.endswith("List") and isinstance(doc.get("items"), list)
    columns = COLUMNS.get(kind[: -len("List")] if listed else kind)
    if columns is None:
        return None
    items = doc["items"] if listed else [doc]
    metadata = {k: v for k, v in (doc.get("metadata") or {}).items() if k in ("resourceVersion", "continue")} if listed else {}
    table: dict[str, Any] = {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": metadata}
    if with_columns:
        table["columnDefinitions"] = [_NAME, *(c for c, _ in columns)]
    table["rows"] = [_row(o, columns, include) for o in items if isinstance(o, dict)]
    return table


INLINE_BYTES = 64 << 10  # a larger answer is converted in a thread
MAX_BYTES = 64 << 20  # a larger answer is passed on as it is (a list page is about KATIB_MAX_LIST_BYTES)


def _converted(raw: bytes, include: str) -> bytes | None:
    table = to_table(json.loads(raw), include=include) if raw else None
    return None if table is None else json.dumps(table, separators=(",", ":")).encode()


class TableAnswers:
    """ASGI middleware: a GET under ``/api`` or ``/apis`` whose ``Accept`` asks for a
    Table gets its JSON answer as one (``to_table``); a watch, a stream with no length,
    passes untouched (it converts its own events)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._applies(scope):
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        body: list[bytes] = []

        async def buffered(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                given = dict(message.get("headers", []))
                length = given.get(b"content-length", b"")
                # Only a whole answer of known, bounded length: a stream (a watch) passes as it is.
                if (message["status"] == 200 and given.get(b"content-type", b"").startswith(b"application/json")
                        and length.isdigit() and int(length) <= MAX_BYTES):
                    start = message
                    return
                await send(message)
                return
            if start is None or message["type"] != "http.response.body":
                await send(message)
                return
            body.append(message.get("body", b""))
            if message.get("more_body"):
                return
            raw = b"".join(body)
            # A page may be megabytes: decoded and encoded off the event loop.
            include = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("includeObject", ["Metadata"])[-1]
            converted = await run_in_threadpool(_converted, raw, include) if len(raw) > INLINE_BYTES else _converted(raw, include)
            headers = [(k, v) for k, v in start.get("headers", []) if k not in (b"content-length", b"content-type")]
            if converted is not None:
                raw = converted
                headers.append((b"content-type", TABLE_TYPE.encode()))
            else:
                headers.append((b"content-type", dict(start["headers"])[b"content-type"]))
            headers.append((b"content-length", str(len(raw)).encode()))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": raw})

        await self.app(scope, receive, buffered)

    @staticmethod
    def _applies(scope: Scope) -> bool:
        if scope["type"] != "http" or scope["method"] != "GET":
            return False
        path = scope["path"]
        if not (path.startswith("/api/") or path.startswith("/apis/")):
            return False
        accept = next((v.decode("latin-1") for k, v in scope.get("headers", []) if k == b"accept"), "")
        return wants_table(accept)
