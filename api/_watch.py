"""Kubernetes watches (``?watch=true``) on the Katib objects, for ``kubectl get -w`` and
``kubectl wait``: a stream of ``{"type": "ADDED" | "MODIFIED" | "DELETED", "object": …}``
lines. A watch from a list's ``resourceVersion`` (``api._listmemory``) starts with what
changed since that list; from any other version, or none, it starts as Kubernetes starts
one from "": an ADDED event for each object that matches. Then one event per change.

Changes are found by reading the watched objects again, at most once a second and sooner
after the controller publishes an event of the namespace, and comparing them with the
last reading. Each watch has bounded cost: it covers at most ``MAX_OBJECTS`` objects (a
wider one is refused: narrow it with a selector), waits between readings at least ten
times what a reading took, counts among the event streams (``KATIB_MAX_STREAMS`` and the
per-client limit), looks its caller up again as the event stream does, and ends after
``timeoutSeconds`` (at most ``MAX_SECONDS``); a client watches again, as kubectl does."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, StreamingResponse

from katib.errors import FieldError, ForbiddenError, ValidationError
from katib.spec import API_VERSION

from ._auth import StreamCaller
from ._guard import kube_status
from ._listmemory import fingerprint
from ._state import ServerState
from ._tables import to_table

MAX_OBJECTS = 1000  # objects one watch reads again at every look
MAX_SECONDS = 1800  # the longest a watch lasts (Kubernetes' minimum request timeout)
POLL_SECONDS = 1.0  # the longest between two looks
MIN_SPACING = 10  # a look waits at least this many times the previous look's duration


def too_many() -> ValidationError:
    return ValidationError([FieldError("watch", f"a watch covers at most {MAX_OBJECTS} objects (and a list page's bytes, "
                                                "KATIB_MAX_LIST_BYTES); this one covers more: narrow it with labelSelector "
                                                "or fieldSelector")], "request")


def _client(request: Request, user_name: str | None) -> str:
    return f"user:{user_name}" if user_name is not None else f"addr:{request.client.host if request.client else '-'}"


def _full(state: ServerState, client: str) -> JSONResponse | None:
    """The 429 answer when this client (or the server) has no stream left."""
    open_streams = state.streams
    if open_streams.get(client, 0) < state.limits.streams_per_client and sum(open_streams.values()) < state.limits.streams_total:
        return None
    return JSONResponse(kube_status(429, f"too many open streams (at most {state.limits.streams_per_client} per client and "
                                         f"{state.limits.streams_total} in all); close one first"), status_code=429)


@contextlib.contextmanager
def _holding(state: ServerState, client: str) -> Iterator[None]:
    """One of the server's open streams, for as long as the block runs."""
    state.streams[client] = state.streams.get(client, 0) + 1
    try:
        yield
    finally:
        state.streams[client] -= 1
        if not state.streams[client]:
            del state.streams[client]


def _key(obj: dict[str, Any]) -> str:
    return str(obj.get("metadata", {}).get("name", ""))


async def watch(request: Request, state: ServerState, namespace: str, kind: str, read: Callable[[], list[dict[str, Any]]],
                since: dict[str, str] | None, timeout_seconds: int | None, table: bool) -> StreamingResponse | JSONResponse:
    """The watch's answer: ``read`` gives the watched objects as they are now (it raises
    ``too_many`` past ``MAX_OBJECTS``); it is called once before the answer starts, so a
    refused watch is an error, not a stream. ``since`` is the list the watch starts from
    (``ListMemory.recall``): the first events are the differences from it, or, without
    one, every object ADDED."""
    caller = StreamCaller(request)
    if not caller.may_read(namespace):
        assert caller.user is not None
        raise ForbiddenError(f"user {caller.user.name!r} may not read anything in namespace {namespace!r} (needs the viewer role)")
    client = _client(request, caller.user.name if caller.user else None)
    refused = _full(state, client)
    if refused is not None:
        return refused
    started = time.monotonic()
    first = await asyncio.to_thread(read)
    spacing = MIN_SPACING * (time.monotonic() - started)
    limit = min(timeout_seconds, MAX_SECONDS) if timeout_seconds else MAX_SECONDS
    loop = asyncio.get_running_loop()
    woken = asyncio.Event()

    def nudge(event: dict[str, Any]) -> None:
        if event.get("namespace") == namespace:
            loop.call_soon_threadsafe(woken.set)

    api_version = first[0].get("apiVersion", "") if first else ("v1" if kind in ("Pod", "Event") else API_VERSION)
    headers = [True]  # a Table's column definitions go with the first event only

    def line(kind_of_event: str, obj: dict[str, Any]) -> str:
        if table:
            obj = to_table(obj, with_columns=headers[0]) or obj
            headers[0] = False
        return json.dumps({"type": kind_of_event, "object": obj}, separators=(",", ":")) + "\n"

    async def stream() -> Any:
        # Held while the stream runs (an answer never started releases nothing it took).
        with _holding(state, client):
            unsubscribe = state.manager.subscribe(nudge)
            try:
                async for text in _events():
                    yield text
            finally:
                unsubscribe()

    async def _events() -> Any:
        nonlocal spacing
        seen = {_key(o): o for o in first}
        for name, obj in seen.items():
            if since is None or name not in since:
                yield line("ADDED", obj)
            elif since[name] != fingerprint(obj):
                yield line("MODIFIED", obj)
        for name in (since or {}).keys() - seen.keys():
            yield line("DELETED", {"apiVersion": api_version, "kind": kind,
                                   "metadata": {"name": name, "namespace": namespace}})
        deadline = started + limit
        while time.monotonic() < deadline:
            wait = max(POLL_SECONDS if not woken.is_set() else 0.0, spacing)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(woken.wait(), timeout=min(wait, max(0.0, deadline - time.monotonic())))
            if spacing and woken.is_set():
                await asyncio.sleep(spacing)
            woken.clear()
            if time.monotonic() >= deadline or await request.is_disconnected():
                return
            if not await caller.fresh() or not caller.may_read(namespace):
                return
            began = time.monotonic()
            try:
                now = {_key(o): o for o in await asyncio.to_thread(read)}
            except ValidationError:  # grew past MAX_OBJECTS: the client lists and watches again
                return
            spacing = MIN_SPACING * (time.monotonic() - began)
            for name, obj in now.items():
                if name not in seen:
                    yield line("ADDED", obj)
                elif seen[name] != obj:
                    yield line("MODIFIED", obj)
            for name, obj in seen.items():
                if name not in now:
                    yield line("DELETED", obj)
            seen = now

    # Not compressed: each event is sent as it happens, the headers at once (a compressor
    # holds them until the first event).
    return StreamingResponse(stream(), media_type="application/json", headers={"content-encoding": "identity"})
