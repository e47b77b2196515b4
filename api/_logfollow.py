"""``kubectl logs -f``: a trial's output as it is written, until the trial ends.

The log is read from where the last read ended (``Executor.log_since``, at most the
server's ``log_bytes`` a read) as soon as the last read found something, every ``POLL``
seconds otherwise; whether the trial has ended is looked up every ``CHECK_SECONDS`` (and
after each controller event of the namespace). Once it has, what it wrote before the end
is sent and the stream ends, as Kubernetes ends a followed log when the container exits.
With ``tailLines`` the stream starts with the last lines written so far. A followed log
counts among the open streams, looks its caller up again as a watch does, and lasts at
most ``MAX_SECONDS``; ``limitBytes`` ends it after that many bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from functools import partial
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

from katib.controller import FINAL_TRIAL_STATES
from katib.errors import FieldError, NotFoundError, ValidationError
from katib.store import ExperimentRecord, TrialRecord

from . import _service
from ._auth import StreamCaller, stream_client
from ._state import ServerState
from ._watch import MAX_SECONDS, SlotResponse, in_thread, too_many_streams

POLL = 0.5  # between two reads that found nothing new
CHECK_SECONDS = 2.0  # between two looks at whether the trial has ended (sooner after an event)

ReadSince = Callable[[int], tuple[bytes, int]]


def last_lines(read_since: ReadSince, lines: int, most: int) -> tuple[bytes, int]:
    """The last ``lines`` lines written so far (at most ``most`` bytes of them) and the
    offset after them, read through from the start as the stream would have sent it."""
    kept: deque[bytes] = deque()
    size, offset, partial = 0, 0, b""
    while True:
        chunk, offset = read_since(offset)
        if not chunk:
            break
        *whole, partial = (partial + chunk).split(b"\n")
        for line in whole:
            kept.append(line + b"\n")
            size += len(line) + 1
            while len(kept) > lines or size > most:
                size -= len(kept.popleft())
    if partial:  # a last line still being written counts as a line, as Kubernetes counts it
        kept.append(partial)
        size += len(partial)
        while len(kept) > lines or size > most:
            size -= len(kept.popleft())
    return b"".join(kept), offset


async def follow(request: Request, state: ServerState, namespace: str, read_since: ReadSince,
                 ended: Callable[[], bool], tail_lines: int | None, limit_bytes: int | None) -> SlotResponse | JSONResponse:
    """The followed log's answer: ``read_since(offset)`` gives what was written from
    ``offset`` on and where to read on; ``ended()`` whether the trial has ended."""
    caller = StreamCaller(request)
    client = stream_client(request, caller.user)
    if not state.open_stream(client):  # taken with the check: no await between them
        return too_many_streams(state)
    deadline = time.monotonic() + MAX_SECONDS
    budget = limit_bytes if limit_bytes is not None else -1
    loop = asyncio.get_running_loop()
    woken = asyncio.Event()

    def nudge(event: dict[str, Any]) -> None:
        if event.get("namespace") == namespace:
            loop.call_soon_threadsafe(woken.set)

    def within(chunk: bytes) -> bytes:
        nonlocal budget
        if budget < 0:
            return chunk
        chunk, budget = chunk[:budget], max(0, budget - len(chunk))
        return chunk

    async def stream() -> Any:
        unsubscribe = state.manager.subscribe(nudge)
        try:
            offset = 0
            if tail_lines is not None:
                first, offset = await in_thread(lambda: last_lines(read_since, tail_lines, state.limits.log_bytes))
                if first:
                    yield within(first)
            over, checked = False, 0.0
            while budget != 0:
                chunk, offset = await in_thread(partial(read_since, offset))
                if chunk:
                    yield within(chunk)
                    continue
                if over or time.monotonic() >= deadline or await request.is_disconnected():
                    return  # over: what the trial wrote before it ended has been sent
                if not await caller.fresh() or not caller.may_read(namespace):
                    return
                if woken.is_set() or time.monotonic() - checked >= CHECK_SECONDS:
                    woken.clear()
                    checked = time.monotonic()
                    over = await in_thread(ended)
                    if over:
                        continue  # one more read: what was written before the end
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(woken.wait(), timeout=POLL)
        finally:
            unsubscribe()

    return SlotResponse(stream(), lambda: state.close_stream(client), media_type="text/plain; charset=utf-8")


def refuse_unkept(**asked: Any) -> None:
    """A trial's log keeps no time per line and no previous run: asking by them is a 422
    naming the parameter, not a whole log that looks like the answer."""
    errors = [FieldError(name, "a trial's log lines carry no times here" if name != "previous"
                         else "a trial has no previous container") for name, value in asked.items() if value]
    if errors:
        raise ValidationError(errors, "request")


# Katib's metrics collector sidecar. With the StdOut collector it prints the trial's output
# (the training container's own is redirected to it), and the Katib SDK's get_job_logs reads it.
COLLECTOR_CONTAINER = "metrics-logger-and-collector"


def check_container(rec: ExperimentRecord, pods: list[dict[str, Any]], pod: str, container: str | None) -> None:
    """``container`` must be one of the pod's (the trial's primary container), or Katib's
    collector sidecar where it would print the trial's output (the StdOut collector)."""
    if container is None:
        return
    found = next((p for p in pods if p["metadata"]["name"] == pod), pods[0] if pods else None)
    names = [c["name"] for c in (found or {}).get("spec", {}).get("containers", [])]
    collector = ((rec.spec.get("spec") or {}).get("metricsCollectorSpec") or {}).get("collector") or {}
    if (collector.get("kind") or "StdOut") == "StdOut":
        names.append(COLLECTOR_CONTAINER)
    if container not in names:
        raise ValidationError([FieldError("container", f"container {container!r} is not valid for pod {pod!r} "
                                                       f"(its containers: {', '.join(names)})")], "request")


async def follow_trial(request: Request, state: ServerState, rec: ExperimentRecord, t: TrialRecord,
                       tail_lines: int | None, limit_bytes: int | None) -> SlotResponse | JSONResponse:
    """``follow`` for one trial: its log through its executor, its end from the store."""
    current = [t]

    def read_since(offset: int) -> tuple[bytes, int]:
        return _service.trial_log_since(state, rec, current[0], offset)

    def ended() -> bool:
        try:
            _, current[0] = state.store.get_trial(rec.namespace, t.name)
        except NotFoundError:  # deleted with its experiment: nothing more comes
            return True
        return current[0].state in FINAL_TRIAL_STATES

    return await follow(request, state, rec.namespace, read_since, ended, tail_lines, limit_bytes)
