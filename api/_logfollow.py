"""``kubectl logs -f``: a trial's output as it is written, until the trial stops running.

A followed log starts near the end, as a plain read does: the last ``log_bytes`` of the
output (from a line's start), or, with ``tailLines``, the last lines of those. Then what is
written is read from where the last read ended (``Executor.log_since``, at most
``log_bytes`` a read): again as soon as a read found something, every ``POLL`` seconds
otherwise. Whether the trial still runs is looked up every ``CHECK_SECONDS``, and soon
after a controller event of the trial or its experiment (at most every ``MIN_CHECK_GAP``).
Once it has ended, or stopped running (an experiment stopped puts its running trials back
to ``Created``), what it wrote before that is sent and the stream ends, as Kubernetes ends
a followed log when the container exits. A trial that has not started yet is a 400, as a
pod waiting to start is.

Each followed log counts among the open streams, looks its caller up again before every
read (as a watch does), and lasts at most ``MAX_SECONDS``; ``limitBytes`` ends it after
that many bytes. A log that shrinks (truncated, or replaced) ends it: what follows is not
the same output. A read that fails ends it too (logged).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

from katib.errors import FieldError, KatibError, NotFoundError, ValidationError
from katib.store import ExperimentRecord, TrialRecord

from . import _service
from ._auth import StreamCaller, stream_client
from ._state import ServerState
from ._watch import MAX_SECONDS, SlotResponse, in_thread, too_many_streams

log = logging.getLogger(__name__)

POLL = 0.5  # between two reads that found nothing new
CHECK_SECONDS = 2.0  # between two looks at whether the trial still runs (sooner after its events)
MIN_CHECK_GAP = 0.5  # the shortest between two such looks

# Katib's metrics collector sidecar. With the StdOut collector it prints the trial's output
# (the training container's own is redirected to it), and the Katib SDK's get_job_logs reads it.
COLLECTOR_CONTAINER = "metrics-logger-and-collector"


@dataclass
class TrialLog:
    """One trial's output as the follower reads it, and its state (None: deleted)."""

    read_since: Callable[[int], tuple[bytes, int]]
    size: Callable[[], int]
    state: Callable[[], str | None]


def opening(log_: TrialLog, lines: int | None, most: int) -> tuple[bytes, int]:
    """What a followed log starts with, and the offset after it: the last ``most`` bytes
    written so far, from the first whole line (or all of it), or the last ``lines`` lines of
    those. At most ``most`` bytes are read, whatever the log's size."""
    end = log_.size()
    start = max(0, end - most)
    data, offset = b"", start
    while offset < end:
        chunk, offset = log_.read_since(offset)
        if not chunk:
            break
        data += chunk
    if start:
        data = data[data.find(b"\n") + 1:] if b"\n" in data else b""  # not half a line
    if lines is not None:
        kept = data.splitlines(keepends=True)
        data = b"".join(kept[-lines:]) if lines else b""
    return data, offset


async def follow(request: Request, state: ServerState, rec: ExperimentRecord, trial: str, log_: TrialLog,
                 running: bool, tail_lines: int | None, limit_bytes: int | None) -> SlotResponse | JSONResponse:
    """The followed log's answer; ``running``: the trial ran when it was asked for (else it
    has ended: what it wrote is sent, then the stream ends)."""
    caller = StreamCaller(request)
    client = stream_client(request, caller.user)
    if not state.open_stream(client):  # taken with the check: no await between them
        return too_many_streams(state)
    namespace = rec.namespace
    deadline = time.monotonic() + MAX_SECONDS
    budget = limit_bytes if limit_bytes is not None else -1
    loop = asyncio.get_running_loop()
    woken = asyncio.Event()

    def nudge(event: dict[str, Any]) -> None:
        if (event.get("namespace"), event.get("experiment")) == (namespace, rec.name) and event.get("trial") in (None, trial):
            loop.call_soon_threadsafe(woken.set)

    def within(chunk: bytes) -> bytes:
        nonlocal budget
        if budget < 0:
            return chunk
        chunk, budget = chunk[:budget], max(0, budget - len(chunk))
        return chunk

    async def stream() -> Any:
        unsubscribe = state.manager.subscribe(nudge)
        over, checked = not running, time.monotonic()
        try:
            first, offset = await in_thread(partial(opening, log_, tail_lines, state.limits.log_bytes))
            if first:
                yield within(first)
            while budget != 0:
                if time.monotonic() >= deadline or await request.is_disconnected():
                    return
                if not await caller.fresh() or not caller.may_read(namespace):
                    return
                chunk, offset = await in_thread(partial(log_.read_since, offset))
                if chunk:
                    yield within(chunk)
                    continue
                if over:
                    return  # what the trial wrote before it stopped has been sent
                if await in_thread(log_.size) < offset:
                    return  # truncated or replaced: another output from here on
                now = time.monotonic()
                if now - checked >= CHECK_SECONDS or (woken.is_set() and now - checked >= MIN_CHECK_GAP):
                    woken.clear()
                    checked = now
                    now_state = await in_thread(log_.state)
                    over = now_state != "Running"  # ended (or deleted: None), or stopped and put back
                    if over:
                        continue  # one more read: what was written before the end
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(woken.wait(), timeout=POLL)
        except Exception:  # noqa: BLE001 (a busy store, a plugin's log: the answer has begun, so it ends)
            log.warning("following trial %s/%s's log ended on an error", namespace, trial, exc_info=True)
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
    """``follow`` for one trial: its log through its executor, its state from the store."""
    if t.state == "Created":  # as a pod waiting to start answers kubectl logs -f
        raise KatibError(f"container in pod {t.name!r} is waiting to start: the trial has not started")
    current = [t]

    def state_now() -> str | None:
        try:
            _, current[0] = state.store.get_trial(rec.namespace, t.name)
        except NotFoundError:  # deleted with its experiment: nothing more comes
            return None
        return current[0].state

    log_ = TrialLog(read_since=lambda offset: _service.trial_log_since(state, rec, current[0], offset),
                    size=lambda: _service.trial_log_size(state, rec, current[0]), state=state_now)
    return await follow(request, state, rec, t.name, log_, t.state == "Running", tail_lines, limit_bytes)
