"""Our REST API: ``/api/v1/…``. Errors are ``{"message", "errors": [{field, message}]}``."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from katib import views
from katib.controller import EDITABLE, is_completed
from katib.errors import ForbiddenError, KatibError
from katib.spec import Trial
from katib.store import (
    ExperimentRecord,
    experiment_page,
    latest_trial,
    observation_page,
    trial_page,
)

from .. import _paging, _service
from .._auth import StreamCaller, can_read, current_user, stream_client
from .._documents import created_links, experiment_body, read_document
from .._guard import kube_status
from .._models import (
    ControllerAnswer,
    ExperimentItem,
    ExperimentList,
    ExperimentStatusAnswer,
    ObservationLog,
    TrialStopping,
)
from .._state import ServerState, get_state

router = APIRouter(prefix="/api/v1", tags=["experiments"])
KEEP_ALIVE_SECONDS = 15.0  # an idle event stream's keep-alive, and how often it looks its caller up again

LINKS = created_links("getExperiment getExperimentStatus listTrials stopExperiment editBudget deleteExperiment")


@router.get("/experiments", response_model=ExperimentList, response_model_exclude_none=True)
def list_all(request: Request, namespace: str | None = None, limit: int | None = _paging.LIMIT,
             continue_: str | None = _paging.CONTINUE,
             brief: bool = Query(False, description="each item's spec cut to what a list of experiments shows "
                                 "(objective, algorithm name, budget, executor): what the viewer's home page reads"),
             state: ServerState = Depends(get_state)) -> ExperimentList:
    """The experiments the caller may read (of one namespace if given), as Katib objects,
    oldest first, a page at a time: at most ``limit`` (and the server's ``page`` limit) and
    about the server's ``list_bytes`` of them (a page ends before the experiment that would
    pass it, and holds at least one); while more follow, ``metadata.continue`` is the token
    to pass as ``?continue=`` for the next page. No ``limit`` means a whole page."""
    user = current_user(request)
    listing, scope = "experiments", namespace if namespace is not None else "*"
    at = _paging.start(continue_, listing, scope, None)
    readable = None if user is None or user.admin else {ns for ns in user.roles if can_read(user, ns)}
    recs, following = experiment_page(state.store, _paging.page_size(limit, state.limits.page), state.limits.list_bytes,
                                      at.experiment if at else 0, namespace, readable)
    items = []
    for r in recs:
        failure = None
        if views.phase(r) == "Failed":  # why: the trial that failed last (read alone)
            last = latest_trial(state.store, r.id, FAILED)
            failure = views.last_failure([last] if last else [])
        obj = views.experiment(_brief(r) if brief else r)
        items.append(ExperimentItem.model_validate({**dict(obj), **controls(state, r), "last_failure": failure}))
    token = _paging.encode(listing, scope, None, _paging.Position(following, "")) if following is not None else None
    return ExperimentList(items=items, read_only=state.read_only, metadata={"continue": token} if token else None)


FAILED = ("Failed", "MetricsUnavailable")
# What a list of experiments shows of a spec (?brief=true): never its parameters' values,
# trial template or NAS config, which may weigh a megabyte.
BRIEF_SPEC = ("objective", "maxTrialCount", "parallelTrialCount", "maxFailedTrialCount", "resumePolicy", "executor")


def _brief(rec: ExperimentRecord) -> ExperimentRecord:
    """The experiment with its spec cut to what a list shows (``BRIEF_SPEC``, the
    algorithm's name) and its metadata to its name's and labels."""
    doc = rec.spec
    spec = doc.get("spec") or {}
    cut = {k: spec[k] for k in BRIEF_SPEC if k in spec}
    if isinstance(spec.get("algorithm"), dict):
        cut["algorithm"] = {"algorithmName": spec["algorithm"].get("algorithmName")}
    meta = doc.get("metadata") or {}
    return replace(rec, spec={**{k: doc[k] for k in ("apiVersion", "kind") if k in doc},
                              "metadata": {k: meta[k] for k in ("labels",) if k in meta}, "spec": cut})


def controls(state: ServerState, rec: ExperimentRecord) -> dict[str, bool]:
    """What the viewer may offer for an experiment, so it never offers what would fail:
    ``active`` (a controller runs it now: this server's, or a ``katib run`` elsewhere),
    ``stoppable`` (this server runs it), ``resumable`` (unfinished, and no controller runs
    it), neither on a read-only server (``katib ui``)."""
    mine = state.manager.is_running(rec.namespace, rec.name)
    active = mine or views.controller_alive(rec)
    return {"active": active, "stoppable": mine and not state.read_only,
            "resumable": not state.read_only and views.resumable(rec, active)}


@router.post("/namespaces/{namespace}/experiments", status_code=201, openapi_extra=experiment_body(), responses=LINKS)
async def create(namespace: str, request: Request, dry_run: bool = Query(False, alias="dryRun"),
                 state: ServerState = Depends(get_state)) -> dict[str, Any]:
    """Create an experiment from YAML or JSON and start it. 422 lists every field error."""
    doc = await read_document(request)
    return await asyncio.to_thread(_service.create, state, doc, namespace, dry_run)


@router.get("/namespaces/{namespace}/experiments/{name}", operation_id="getExperiment",
            response_model=views.ExperimentObject, response_model_exclude_none=True)
def get(namespace: str, name: str, state: ServerState = Depends(get_state)) -> views.ExperimentObject:
    return views.experiment(state.store.get_experiment(namespace, name))


@router.delete("/namespaces/{namespace}/experiments/{name}", operation_id="deleteExperiment")
async def delete(namespace: str, name: str, state: ServerState = Depends(get_state)) -> dict[str, str]:
    await asyncio.to_thread(state.manager.delete, namespace, name)
    return {"message": f"experiment {namespace}/{name} deleted"}


@router.post("/namespaces/{namespace}/experiments/{name}/stop", operation_id="stopExperiment",
             response_model=ControllerAnswer, response_model_exclude_none=True)
async def stop(namespace: str, name: str, state: ServerState = Depends(get_state)) -> ControllerAnswer:
    """Stop the controller and the running trials; ``resume`` carries on."""
    state.store.get_experiment(namespace, name)
    await asyncio.to_thread(state.manager.stop, namespace, name)
    return ControllerAnswer(running=state.manager.is_running(namespace, name))


@router.post("/namespaces/{namespace}/experiments/{name}/resume", response_model=ControllerAnswer,
             response_model_exclude_none=True)
async def resume(namespace: str, name: str, state: ServerState = Depends(get_state)) -> ControllerAnswer:
    """Start the experiment's controller again; ``running`` says whether it runs now (a
    controller that fails at once answers ``false`` with its error)."""
    error = await asyncio.to_thread(state.manager.resume, namespace, name)
    running = state.manager.is_running(namespace, name)
    return ControllerAnswer(running=running, message=error if error and not running else None)


class Budget(BaseModel):
    """The part of an experiment's spec that may change while it runs; null restores the default."""

    model_config = ConfigDict(extra="forbid")
    maxTrialCount: int | None = Field(None, le=2**31 - 1)
    parallelTrialCount: int | None = Field(None, le=2**31 - 1)
    maxFailedTrialCount: int | None = Field(None, le=2**31 - 1)


@router.patch("/namespaces/{namespace}/experiments/{name}/budget", operation_id="editBudget",
              response_model=views.ExperimentObject, response_model_exclude_none=True)
async def edit_budget(namespace: str, name: str, body: Budget,
                      state: ServerState = Depends(get_state)) -> views.ExperimentObject:
    """Change ``maxTrialCount``, ``parallelTrialCount`` or ``maxFailedTrialCount``."""
    spec = body.model_dump(exclude_unset=True)
    assert set(spec) <= set(EDITABLE)
    return await asyncio.to_thread(_service.patch, state, namespace, name, {"spec": spec})


@router.get("/namespaces/{namespace}/experiments/{name}/trials", response_model=None, operation_id="listTrials")
def trials(namespace: str, name: str, limit: int | None = Query(None, ge=1, le=100_000),
           continue_: str | None = Query(None, alias="continue", max_length=1024),
           offset: str | None = Query(None, include_in_schema=False),
           state: ServerState = Depends(get_state)) -> JSONResponse:
    """The experiment's trials, oldest first, a page at a time (at most ``limit`` and the
    server's ``page`` limit): while more follow, ``metadata.continue`` is the token to
    pass as ``?continue=`` for the next page (Kubernetes' list paging, by keyset: a page
    costs the same anywhere in 100,000 trials, and trials added meanwhile never shift it)."""
    if offset is not None:
        raise KatibError("offset: trials are paged by continue tokens, not offsets; pass the previous "
                         "page's metadata.continue as ?continue=")
    rec = state.store.get_experiment(namespace, name)
    limit = min(limit or state.limits.page, state.limits.page)
    rows, token = trial_page(state.store, rec, limit, continue_)
    body: dict[str, Any] = {"metadata": {"continue": token} if token else {},
                            "items": [views.trial_object(rec, t) for t in rows]}
    # Serialised directly: thousands of plain dicts need no model validation.
    return JSONResponse(body)


@router.get("/namespaces/{namespace}/trials/{trial}", response_model=Trial, response_model_exclude_none=True)
def trial(namespace: str, trial: str, state: ServerState = Depends(get_state)) -> Trial:
    rec, t = _service.trial(state, namespace, trial)
    return views.trial(rec, t)


@router.post("/namespaces/{namespace}/trials/{trial}/stop", operation_id="stopTrial", response_model=TrialStopping)
def stop_trial(namespace: str, trial: str, state: ServerState = Depends(get_state)) -> TrialStopping:
    """Stop one running trial: it ends ``EarlyStopped`` and the experiment carries on. 409
    unless the trial is running under this server's controller. (Not ``async``: it reads
    the store and may ask another server, off the event loop.)"""
    from katib.errors import ConflictError

    rec, t = _service.trial(state, namespace, trial)
    if t.state != "Running":
        raise ConflictError(f"trial {namespace}/{trial} is {t.state}: only a running trial can be stopped")
    if not state.manager.stop_trial_early(namespace, rec.name, trial, "stopped by a user"):
        raise ConflictError(f"trial {namespace}/{trial}: this server does not run experiment {rec.name} "
                            "(another process does, or nothing does)")
    return TrialStopping(trial=trial, stopping=True)


@router.post("/namespaces/{namespace}/trials/{trial}/retry", operation_id="retryTrial")
def retry_trial(namespace: str, trial: str, state: ServerState = Depends(get_state)) -> dict[str, Any]:
    """Run an ended, unsuccessful trial's parameters again, as a new trial labelled
    ``katib.kubeflow.org/retry-of``; it goes before the algorithm's next suggestion and uses
    one trial of the budget. 409 with the reason when it cannot be (running or succeeded,
    already retried, a hyperband or PBT plan, the budget spent, or the experiment not run
    by this server)."""
    from katib.errors import ConflictError

    rec, _ = _service.trial(state, namespace, trial)
    answer = state.manager.retry_trial(namespace, rec.name, trial)
    if answer is None:
        raise ConflictError(f"trial {namespace}/{trial}: this server does not run experiment {rec.name} "
                            "(it has ended, another process runs it, or nothing does)")
    # "asked": another server runs the experiment, checks the request and makes the retry.
    return {"trial": trial, "retrying": True, "forwarded": answer == "asked"}


@router.post("/namespaces/{namespace}/trials/{trial}/metrics", status_code=202)
async def push_metrics(namespace: str, trial: str, body: dict[str, float | str],
                       state: ServerState = Depends(get_state)) -> dict[str, Any]:
    """The Push collector for trials that run elsewhere (pods): ``{"timestamp"?: …,
    "<metric>": <number>, …}``, as ``katib.report_metrics`` sends it. The controller reads
    it with the trial's other pushed values."""
    return await asyncio.to_thread(_service.push_metrics, state, namespace, trial, body)


@router.get("/namespaces/{namespace}/trials/{trial}/observations", response_model=ObservationLog,
            response_model_exclude_none=True)
def observations(namespace: str, trial: str, metric: str | None = None, limit: int | None = _paging.LIMIT,
                 continue_: str | None = _paging.CONTINUE,
                 tail: int | None = Query(None, ge=1, le=100_000, description="the last this many (at most the server's "
                                          "page); metadata.earlierItemCount says how many precede them"),
                 state: ServerState = Depends(get_state)) -> Any:
    """The trial's observation log: each reported value with its time (RFC 3339), in time
    order, a page at a time: at most ``limit`` and the server's ``page`` limit (no
    ``limit``: a whole page, so a small trial's log comes whole, as before). While more
    follow, ``metadata.continue`` is the token of the next page. Asked with ``limit``,
    ``continue`` or ``tail``, ``metadata.resume`` is the token of what follows this
    answer's last value, whether or not more follow: passed as ``?continue=`` later, it
    answers only what was reported since (how the viewer follows a running trial). With
    ``tail``, the log's last values instead."""
    from katib.controller import rfc3339

    if tail is not None and continue_:
        raise KatibError("tail: the last values of the log take no continue token; pass one or the other")
    rec, t = _service.trial(state, namespace, trial)
    size = _paging.page_size(tail if tail is not None else limit, state.limits.page)
    page = observation_page(state.store, rec, t, size, continue_, metric, tail=tail is not None)
    metadata: dict[str, Any] = {}
    if limit is not None or continue_ or tail is not None:  # a reader that pages: a bare GET answers as before
        metadata["resume"] = page.resume
    if page.more:
        metadata["continue"] = page.more
    if page.earlier is not None:
        metadata["earlierItemCount"] = page.earlier
    body: dict[str, Any] = {"metricLogs": [{"timeStamp": rfc3339(r.time), "metric": {"name": r.metric_name, "value": r.value}}
                                           for r in page.rows]}
    if metadata:
        body["metadata"] = metadata
    # Serialised directly: thousands of plain dicts need no model validation.
    return JSONResponse(body)


@router.get("/namespaces/{namespace}/trials/{trial}/log", response_class=PlainTextResponse)
def log(namespace: str, trial: str, tail: int | None = Query(None, ge=0, le=2**31 - 1),
        since: int | None = Query(None, ge=0, le=2**62),
        state: ServerState = Depends(get_state)) -> Any:
    """The trial process's output: its last ``tail`` lines, and at most the server's
    ``log_bytes`` limit of it (the end). With ``since``, the bytes written from that offset
    on (at most ``log_bytes`` of them) and, in ``X-Log-Offset``, where to read on: how
    ``katib logs -f`` follows a trial through a server."""
    rec, t = _service.trial(state, namespace, trial)
    if since is None:
        return _service.trial_log(state, rec, t, tail)
    chunk, offset = _service.trial_log_since(state, rec, t, since)
    return Response(chunk, media_type="text/plain; charset=utf-8", headers={"X-Log-Offset": str(offset)})


@router.get("/events")
async def events(request: Request, namespace: str | None = None, experiment: str | None = None,
                 state: ServerState = Depends(get_state)) -> StreamingResponse:
    """Server-sent events: trials launched, metrics, trials finished, experiments ended.
    The caller is looked up again while the stream lasts (``StreamCaller``): a namespace's
    events reach only those who may read it at that moment, and the stream ends at the
    next event or keep-alive after its token stops working or, for one namespace's
    stream, after the caller's role in it is taken away."""
    accept = request.headers.get("accept", "").lower()
    if "application/json" in accept and "text/event-stream" not in accept:
        # kubectl get events -A: a Kubernetes list across namespaces, which is not served
        # (each namespace's events are at /api/v1/namespaces/{namespace}/events): an
        # answer, not a stream that never ends.
        why = "events are listed one namespace at a time here (kubectl get events -n NAMESPACE, not -A)"
        return JSONResponse(kube_status(422, f"invalid request: namespace: {why}", [{"field": "namespace", "message": why}]),
                            status_code=422)  # type: ignore[return-value]
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=10_000)
    loop = asyncio.get_running_loop()
    caller = StreamCaller(request)
    user = caller.user
    if namespace and not caller.may_read(namespace):
        assert user is not None
        raise ForbiddenError(f"user {user.name!r} may not read anything in namespace {namespace!r} (needs the viewer role)")
    client = stream_client(request, user)
    if not state.open_stream(client):
        return JSONResponse(  # type: ignore[return-value]
            {"message": f"too many open event streams (at most {state.limits.streams_per_client} per client and "
                        f"{state.limits.streams_total} in all); close one first"}, status_code=429)

    def push(event: dict[str, Any]) -> None:
        if namespace and event.get("namespace") != namespace:
            return
        if not caller.may_read(event.get("namespace", "")):  # as last looked up; checked again on delivery
            return
        if experiment and event.get("experiment") != experiment:
            return
        def deliver() -> None:
            if not queue.full():  # a subscriber that stopped reading loses events, not memory
                queue.put_nowait(event)

        loop.call_soon_threadsafe(deliver)

    unsubscribe = state.manager.subscribe(push)

    async def stream() -> Any:
        try:
            yield ": connected\n\n"
            while not await request.is_disconnected():
                try:
                    event: dict[str, Any] | None = await asyncio.wait_for(queue.get(), timeout=KEEP_ALIVE_SECONDS)
                except TimeoutError:
                    event = None
                # Who reads it now, not who opened it: a keep-alive looks the caller up
                # again, an event with a lookup at most RECHECK_SECONDS old.
                if not await caller.fresh(now=event is None) or (namespace and not caller.may_read(namespace)):
                    return
                if event is None:
                    yield ": keep-alive\n\n"
                elif caller.may_read(event.get("namespace", "")):
                    yield f"event: {event['type']}\ndata: {json.dumps(event)}\n\n"
        finally:
            unsubscribe()
            state.close_stream(client)

    return StreamingResponse(stream(), media_type="text/event-stream")


@router.get("/namespaces/{namespace}/experiments/{name}/status", operation_id="getExperimentStatus",
            response_model=ExperimentStatusAnswer, response_model_exclude_none=True)
def status(namespace: str, name: str, state: ServerState = Depends(get_state)) -> ExperimentStatusAnswer:
    """Just the status, with whether a controller is running it now."""
    rec = state.store.get_experiment(namespace, name)
    return ExperimentStatusAnswer(status=rec.status, running=state.manager.is_running(namespace, name),
                                  completed=is_completed(rec.status), phase=views.phase(rec))


class MetricLog(BaseModel):
    """One reported value of a metric."""

    model_config = ConfigDict(extra="forbid")
    name: str
    value: float | str
    timestamp: str | float | None = None


class TellBody(BaseModel):
    """A trial's results: metric name → number (or ``[{name, value, timestamp}]``)."""

    model_config = ConfigDict(extra="forbid")
    trial: str
    metrics: dict[str, float] | list[MetricLog] = Field(default_factory=dict)
    outcome: str = "Succeeded"
    message: str | None = None


@router.post("/namespaces/{namespace}/experiments/{name}/ask")
async def ask(namespace: str, name: str, count: int = Query(1, ge=1, le=1000),
              state: ServerState = Depends(get_state)) -> dict[str, Any]:
    """New trials for an outside loop (``spec.executor: external``): their names and parameters."""
    assert state.ask_tell is not None
    trials = await asyncio.to_thread(state.ask_tell.ask, namespace, name, count)
    state.manager.publish({"type": "asked", "namespace": namespace, "experiment": name})  # the viewer's pages refresh
    return {"trials": trials}


@router.post("/namespaces/{namespace}/experiments/{name}/tell")
async def tell(namespace: str, name: str, body: TellBody, state: ServerState = Depends(get_state)) -> dict[str, Any]:
    """A trial's metrics and outcome (``Succeeded`` or ``Failed``) from the outside loop."""
    assert state.ask_tell is not None
    metrics = body.metrics if isinstance(body.metrics, dict) else [m.model_dump(exclude_none=True) for m in body.metrics]
    told = await asyncio.to_thread(state.ask_tell.tell, namespace, name, body.trial, metrics,  # type: ignore[arg-type]
                                   body.outcome, body.message)
    state.manager.publish({"type": "told", "namespace": namespace, "experiment": name, "trial": body.trial,
                           "state": told.get("state")})
    return told
