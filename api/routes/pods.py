"""Trials as the pods Kubernetes would run them: ``/api/v1/namespaces/{ns}/pods`` (a list,
a watch, one pod) and each pod's log (``kubectl logs [-f]``, ``api._logfollow``). Errors
are Kubernetes ``Status`` objects."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool

from katib.controller import rfc3339
from katib.errors import NotFoundError
from katib.runtimes import is_trainjob
from katib.spec import EXPERIMENT_LABEL, TRIAL_LABEL
from katib.store import ExperimentRecord, TrialRecord

from .. import _logfollow, _paging, _service, _watch
from .. import _selectors as selectors
from .._state import ServerState, get_state
from .._trainjobs import JOBSET_NAME_LABEL, trainjob_of, trainjob_pods
from ._kubelists import (
    FIELD_SELECTOR,
    TIMEOUT,
    WATCH,
    list_key,
    list_version,
    of_experiment,
    or_none,
    scan_cap,
    watch_of,
    whole_reading,
)

router = APIRouter(tags=["kubernetes"])


_PHASES = {"Created": "Pending", "Running": "Running", "Succeeded": "Succeeded", "EarlyStopped": "Succeeded",
           "MetricsUnavailable": "Succeeded", "Failed": "Failed", "Killed": "Failed"}


def _pods(rec: ExperimentRecord, t: TrialRecord) -> list[dict[str, Any]]:
    """A trial's pods: one named after it; a TrainJob's, one per node with JobSet's labels."""
    template = rec.spec.get("spec", {}).get("trialTemplate", {})
    labels = {**(template.get("primaryPodLabels") or {}), EXPERIMENT_LABEL: rec.name, TRIAL_LABEL: t.name, "job-name": t.name}
    job = trainjob_of(rec, t) if is_trainjob(template.get("trialSpec")) else None
    return trainjob_pods(rec, t, job, labels) if job is not None else [_pod(rec, t, labels)]


def _pod(rec: ExperimentRecord, t: TrialRecord, labels: dict[str, str]) -> dict[str, Any]:
    template = rec.spec.get("spec", {}).get("trialTemplate", {})
    container = template.get("primaryContainerName", "main")
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": t.name, "namespace": rec.namespace, "labels": labels,
                         "creationTimestamp": rfc3339(t.created_at)},
            "spec": {"containers": [{"name": container, "image": "local"}]},
            "status": {"phase": _PHASES.get(t.state, "Unknown")}}


@router.get("/api/v1/namespaces/{namespace}/pods", response_model=None)
async def list_pods(request: Request, namespace: str, label_selector: str | None = Query(None, alias="labelSelector"),
                    field_selector: str | None = FIELD_SELECTOR, limit: int | None = _paging.LIMIT,
                    continue_: str | None = _paging.CONTINUE, watch: bool = WATCH, timeout_seconds: int | None = TIMEOUT,
                    state: ServerState = Depends(get_state)) -> Any:
    """Each trial that has run shows as one pod named after it (a TrainJob trial as one
    per node), a page at a time as ``…/trials`` are: at most ``limit`` pods and the
    server's page (``KATIB_MAX_PAGE``), ``metadata.continue`` while more follow (a page
    may end within a trial's pods; the next starts where it ended). With ``watch``, a
    stream of their changes (``kubectl get pods -w``), as for trials."""
    selector = selectors.labels(label_selector)
    fields = selectors.fields(field_selector, "Pod")
    key = selectors.paging_key(label_selector, field_selector)

    def wanted(pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [p for p in pods if selectors.labels_match(p["metadata"]["labels"], selector) and selectors.fields_match(p, fields)]

    trial = next((selector[k] for k in (TRIAL_LABEL, JOBSET_NAME_LABEL) if isinstance(selector.get(k), str)), None)

    def walk_from(at: _paging.Position | None, size: int, keep: Any = None) -> Iterator[_paging.Entry]:
        if trial is not None:
            found = or_none(state.store.get_trial, namespace, str(trial))
            return _paging.walk_one(found[0], wanted(_pods(*found)), at) if found is not None else iter(())
        heads = _paging.heads(state.store, namespace, at, of_experiment(selector))
        return _paging.walk_trials(state.store, heads, at, lambda rec, t: wanted(_pods(rec, t)), _paging.chunk_for(size),
                                   keep=keep, budget=_paging.Budget(state.limits.list_bytes, size))

    if watch:
        def watched() -> list[dict[str, Any]]:
            return whole_reading(walk_from(None, _watch.MAX_OBJECTS, scan_cap()))

        return await watch_of(request, state, namespace, "Pod", watched, fields,
                              list_key("pods", namespace, label_selector, field_selector), timeout_seconds)

    def page() -> JSONResponse:
        size = _paging.page_size(limit, state.limits.page)
        items, spot = _paging.fill(walk_from(_paging.start(continue_, "pods", namespace, key), size), size)
        token = _paging.next_token(state.store, spot, "pods", namespace, key)
        found = _paging.built(items)
        listed = _paging.kube_list("Pod", found, token, "v1")
        if not continue_:  # a version kubectl get pods -w watches from
            listed["metadata"]["resourceVersion"] = list_version(state, list_key("pods", namespace, label_selector, field_selector),
                                                                 found, token is not None)
        return JSONResponse(listed)

    return await run_in_threadpool(page)


@router.get("/api/v1/namespaces/{namespace}/pods/{name}")
def get_pod(namespace: str, name: str, state: ServerState = Depends(get_state)) -> dict[str, Any]:
    """One trial's pod (``kubectl logs`` reads it first): the pod named after the trial, or
    a TrainJob trial's node ``i`` (``<trial>-node-<i>``)."""
    trial = name
    node = re.fullmatch(r"(.+)-node-[0-9]+", name)
    for candidate in ([name, node.group(1)] if node else [name]):
        found = or_none(state.store.get_trial, namespace, candidate)
        if found is not None:
            trial = candidate
            pod = next((p for p in _pods(*found) if p["metadata"]["name"] == name), None)
            if pod is not None:
                return pod
    raise NotFoundError(f"pod {name!r} not found in namespace {namespace!r} (trial {trial!r} has no such pod)")


@router.get("/api/v1/namespaces/{namespace}/pods/{name}/log", response_class=PlainTextResponse)
async def pod_log(request: Request, namespace: str, name: str, container: str | None = None,
                  tail_lines: int | None = Query(None, alias="tailLines", ge=0, le=2**31 - 1), follow: bool = False,
                  limit_bytes: int | None = Query(None, alias="limitBytes", ge=1, le=2**62), previous: bool = False,
                  timestamps: bool = False, since_seconds: int | None = Query(None, alias="sinceSeconds"),
                  since_time: str | None = Query(None, alias="sinceTime"), state: ServerState = Depends(get_state)) -> Any:
    """The trial's output (``kubectl logs``): its last ``tailLines`` lines, at most the
    server's ``log_bytes`` of it and ``limitBytes``; with ``follow``, as it is written
    until the trial ends (``kubectl logs -f``, ``api._logfollow``). A trial's lines carry
    no times and it has no previous container: ``timestamps``, ``sinceSeconds``,
    ``sinceTime`` and ``previous`` are refused by name."""
    _logfollow.refuse_unkept(previous=previous, timestamps=timestamps, sinceSeconds=since_seconds, sinceTime=since_time)
    def found() -> tuple[ExperimentRecord, TrialRecord, str]:
        rec, t = state.store.get_trial(namespace, name)
        _logfollow.check_container(rec, _pods(rec, t), name, container)  # renders a TrainJob's pods: not on the loop
        return rec, t, "" if follow else _service.trial_log(state, rec, t, tail_lines)

    rec, t, text = await run_in_threadpool(found)
    if follow:
        return await _logfollow.follow_trial(request, state, rec, t, tail_lines, limit_bytes)
    data = text.encode()
    return Response(data[:limit_bytes] if limit_bytes else data, media_type="text/plain; charset=utf-8")
