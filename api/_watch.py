"""Kubernetes watches (``?watch=true``) on the Katib objects, for ``kubectl get -w`` and
``kubectl wait``: a stream of ``{"type": "ADDED" | "MODIFIED" | "DELETED", "object": …}``
lines. A watch from a list's ``resourceVersion`` (``api._listmemory``) starts with what
changed since that list; from any other version, or none, it starts as Kubernetes starts
one from "": an ADDED event for each object that matches. Then one event per change.

Changes are found by reading the watched objects again (soon after the controller
publishes an event of the namespace, and every ``IDLE_SECONDS`` without one) and comparing
them with the last reading. Each watch has bounded cost: it covers at most
``MAX_OBJECTS`` objects (a wider one is refused: narrow it with a selector), waits between
readings at least ``MIN_GAP`` and ten times what a reading took, counts among the event streams (``KATIB_MAX_STREAMS`` and the
per-client limit), looks its caller up again as the event stream does, and ends after
``timeoutSeconds`` (at most ``MAX_SECONDS``); ``kubectl wait`` and client-go informers
watch again, ``kubectl get -w`` ends."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from typing import Any

import anyio
from fastapi import Request
from fastapi.responses import JSONResponse, StreamingResponse

from katib.errors import FieldError, ForbiddenError, ValidationError
from katib.spec import API_VERSION

from ._auth import StreamCaller, stream_client
from ._guard import kube_status
from ._listmemory import fingerprint
from ._state import ServerState
from ._tables import to_table

MAX_OBJECTS = 1000  # objects one watch reads again at every look
MAX_SECONDS = 1800  # the longest a watch lasts (Kubernetes' minimum request timeout)
IDLE_SECONDS = 2.0  # the longest between two readings (sooner after an event of the namespace)
MIN_GAP = 0.5  # the shortest between two readings
MIN_SPACING = 10  # a reading waits at least this many times the previous one's duration


def too_many() -> ValidationError:
    return ValidationError([FieldError("watch", f"a watch covers at most {MAX_OBJECTS} objects (and a list page's bytes, "
                                                "KATIB_MAX_LIST_BYTES); this one covers more: narrow it with labelSelector "
                                                "or fieldSelector")], "request")


def too_many_streams(state: ServerState) -> JSONResponse:
    """The answer to a stream that finds no free slot (a Status kubectl prints)."""
    return JSONResponse(kube_status(429, f"too many open streams (at most {state.limits.streams_per_client} per client "
                                         f"and {state.limits.streams_total} in all); close one first"), status_code=429)


class SlotResponse(StreamingResponse):
    """A long-lived stream (a watch, a followed log); its slot among the open streams
    (taken with the check, so no two requests pass it together) is given back when the
    answer ends, however it ends, even one whose stream never started."""

    def __init__(self, body: Any, release: Callable[[], None], media_type: str = "application/json") -> None:
        # Not compressed: each event is sent as it happens, the headers at once (a
        # compressor holds them until the first event).
        super().__init__(body, media_type=media_type, headers={"content-encoding": "identity"})
        self._release: Callable[[], None] | None = release

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.released()

    def released(self) -> None:
        release, self._release = self._release, None
        if release is not None:
            release()


def _key(obj: dict[str, Any]) -> str:
    return str(obj.get("metadata", {}).get("name", ""))


class _Differ:
    """The watch's state, advanced in a worker thread: a fingerprint and uid of each object
    last seen (not the object: a watch holds little between readings), and the events (as
    the lines sent) that take a client from them to the objects now."""

    def __init__(self, kind: str, namespace: str, table: bool, include: str) -> None:
        self.kind, self.namespace, self.table, self.include = kind, namespace, table, include
        self.seen: dict[str, tuple[str, str]] = {}  # name -> (fingerprint, uid)
        self.api_version = "v1" if kind in ("Pod", "Event") else API_VERSION
        self.columns = True  # a Table's column definitions go with the first event only

    def line(self, kind_of_event: str, obj: dict[str, Any]) -> str:
        if self.table:
            obj = to_table(obj, with_columns=self.columns, include=self.include) or obj
            self.columns = False
        return json.dumps({"type": kind_of_event, "object": obj}, separators=(",", ":")) + "\n"

    def gone(self, name: str, uid: str) -> str:
        meta = {"name": name, "namespace": self.namespace, **({"uid": uid} if uid else {})}
        return self.line("DELETED", {"apiVersion": self.api_version, "kind": self.kind, "metadata": meta})

    @staticmethod
    def _marks(objects: list[dict[str, Any]]) -> dict[str, tuple[tuple[str, str], dict[str, Any]]]:
        return {_key(o): ((fingerprint(o), str(o.get("metadata", {}).get("uid", ""))), o) for o in objects}

    def first(self, objects: list[dict[str, Any]], since: dict[str, str] | None) -> list[str]:
        """From the list the watch starts from (its fingerprints), or from nothing."""
        now = self._marks(objects)
        out = []
        for name, ((mark, _), obj) in now.items():
            if since is None or name not in since:
                out.append(self.line("ADDED", obj))
            elif since[name] != mark:
                out.append(self.line("MODIFIED", obj))
        out += [self.gone(name, "") for name in sorted((since or {}).keys() - now.keys())]
        self.seen = {name: seen for name, (seen, _) in now.items()}
        return out

    def next(self, objects: list[dict[str, Any]]) -> list[str]:
        now = self._marks(objects)
        out = []
        for name, ((mark, uid), obj) in now.items():
            before = self.seen.get(name)
            if before is not None and before[1] != uid:  # deleted and made again between readings
                out.append(self.gone(name, before[1]))
                before = None
            if before is None:
                out.append(self.line("ADDED", obj))
            elif before[0] != mark:
                out.append(self.line("MODIFIED", obj))
        out += [self.gone(name, uid) for name, (_, uid) in self.seen.items() if name not in now]
        self.seen = {name: seen for name, (seen, _) in now.items()}
        return out


_LIMITER: list[anyio.CapacityLimiter] = []
WATCH_THREADS = 8  # worker threads the long-lived streams' readings share (not the routes' pool)


async def in_thread(work: Callable[[], Any]) -> Any:
    if not _LIMITER:
        _LIMITER.append(anyio.CapacityLimiter(WATCH_THREADS))
    return await anyio.to_thread.run_sync(work, limiter=_LIMITER[0])


async def _once(text: str) -> Any:
    yield text


def _error_line(message: str) -> str:
    return json.dumps({"type": "ERROR", "object": kube_status(500, message)}, separators=(",", ":")) + "\n"


async def watch(request: Request, state: ServerState, namespace: str, kind: str, read: Callable[[], list[dict[str, Any]]],
                since: dict[str, str] | None, timeout_seconds: int | None, table: bool) -> StreamingResponse | JSONResponse:
    """The watch's answer: ``read`` gives the watched objects as they are now (it raises
    ``too_many`` past ``MAX_OBJECTS``); it is called once before the answer starts, so a
    refused watch is an error, not a stream. ``since`` is the list the watch starts from
    (``ListMemory.recall``): the first events are the differences from it, or, without
    one, every object ADDED. Reading, comparing and encoding run in worker threads."""
    caller = StreamCaller(request)
    if not caller.may_read(namespace):
        assert caller.user is not None
        raise ForbiddenError(f"user {caller.user.name!r} may not read anything in namespace {namespace!r} (needs the viewer role)")
    client = stream_client(request, caller.user)
    if not state.open_stream(client):  # taken with the check: no await between them
        return too_many_streams(state)
    differ = _Differ(kind, namespace, table, request.query_params.get("includeObject", "Metadata"))
    try:
        started = time.monotonic()
        opening = await in_thread(lambda: differ.first(read(), since))
    except ValidationError as refused_watch:
        # Said in the stream, where a watching client reads it (kubectl prints an ERROR
        # event's Status; it does not read the body of a watch that is not a 200).
        error = kube_status(422, str(refused_watch).splitlines()[-1].strip(" -"))
        return SlotResponse(_once(json.dumps({"type": "ERROR", "object": error}) + "\n"), lambda: state.close_stream(client))
    except BaseException:
        state.close_stream(client)
        raise
    spacing = max(MIN_GAP, MIN_SPACING * (time.monotonic() - started))
    deadline = started + (min(timeout_seconds, MAX_SECONDS) if timeout_seconds else MAX_SECONDS)
    loop = asyncio.get_running_loop()
    woken = asyncio.Event()

    def nudge(event: dict[str, Any]) -> None:
        if event.get("namespace") == namespace:
            loop.call_soon_threadsafe(woken.set)

    async def stream() -> Any:
        nonlocal spacing
        unsubscribe = state.manager.subscribe(nudge)
        try:
            for text in opening:
                yield text
            last = time.monotonic()
            while True:
                # The next reading: after an event of the namespace, or IDLE_SECONDS without
                # one; never sooner than ``spacing`` after the last.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(woken.wait(), timeout=max(0.0, min(last + IDLE_SECONDS, deadline) - time.monotonic()))
                await asyncio.sleep(max(0.0, min(last + spacing, deadline) - time.monotonic()))
                woken.clear()
                if time.monotonic() >= deadline or await request.is_disconnected():
                    return
                if not await caller.fresh() or not caller.may_read(namespace):
                    return
                last = time.monotonic()
                try:
                    lines = await in_thread(lambda: differ.next(read()))
                except ValidationError:  # grew past MAX_OBJECTS: the client lists and watches again
                    return
                except Exception:  # noqa: BLE001 (a busy store, or our bug: said, as Kubernetes says it)
                    yield _error_line("the watched objects could not be read; list and watch again")
                    return
                spacing = max(MIN_GAP, MIN_SPACING * (time.monotonic() - last))
                for text in lines:
                    yield text
        finally:
            unsubscribe()

    return SlotResponse(stream(), lambda: state.close_stream(client))
