"""The subset of the Kubernetes API that ``kubeflow-katib``'s ``KatibClient`` calls: custom
objects under ``/apis/kubeflow.org/v1beta1`` (trial "pods" and their logs under ``/api/v1``
are ``pods.py``'s). Errors are Kubernetes ``Status`` objects."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from katib import views
from katib.controller import is_completed, rfc3339
from katib.spec import API_VERSION, EXPERIMENT_LABEL, Trial
from katib.store import ExperimentRecord, TrialRecord, experiment_page

from .. import _paging, _service, _watch
from .. import _selectors as selectors
from .._documents import created_links, delete_options, experiment_body, read_document
from .._models import KubeExperimentList
from .._state import ServerState, get_state
from ._kubelists import (
    DRY_RUN,
    FIELD_SELECTOR,
    TIMEOUT,
    WATCH,
    dry_run_all,
    list_key,
    list_version,
    name_asked,
    of_experiment,
    or_none,
    scan_cap,
    watch_of,
    watched_experiments,
    whole_reading,
)

router = APIRouter(tags=["kubernetes"])
PREFIX = "/apis/kubeflow.org/v1beta1/namespaces/{namespace}"


@router.post(PREFIX + "/experiments", status_code=201, openapi_extra=experiment_body(),
             responses=created_links("kubeGetExperiment kubePatchExperiment kubeDeleteExperiment getSuggestion"))
async def create_experiment(namespace: str, request: Request, dry_run: str | None = DRY_RUN,
                            state: ServerState = Depends(get_state)) -> dict[str, Any]:
    doc = await read_document(request)
    return await asyncio.to_thread(_service.create, state, doc, namespace, dry_run_all(request))


@router.get(PREFIX + "/experiments", response_model=KubeExperimentList, response_model_exclude_none=True)
async def list_experiments(request: Request, namespace: str, label_selector: str | None = Query(None, alias="labelSelector"),
                           field_selector: str | None = FIELD_SELECTOR, limit: int | None = _paging.LIMIT,
                           continue_: str | None = _paging.CONTINUE, watch: bool = WATCH,
                           timeout_seconds: int | None = TIMEOUT, state: ServerState = Depends(get_state)) -> Any:
    """The namespace's experiments, oldest first, a page at a time: at most ``limit`` (and
    the server's ``page`` limit), and about the server's ``list_bytes`` of them read (a page
    ends before the experiment that would pass it, and holds at least one; one the selector
    leaves out counts too, so a page may hold fewer than ``limit``); ``metadata.continue``
    while more follow. No ``limit`` means a whole page (the Katib SDK asks once). With
    ``watch``, a stream of their changes instead."""
    labels = selectors.labels(label_selector)
    fields = selectors.fields(field_selector, "Experiment")
    if watch:
        def watched() -> list[dict[str, Any]]:
            recs = watched_experiments(state, namespace, labels, fields)
            return [views.experiment(r).model_dump(mode="json", by_alias=True, exclude_none=True) for r in recs]

        return await watch_of(request, state, namespace, "Experiment", watched, fields,
                               list_key("experiments", namespace, label_selector, field_selector), timeout_seconds)
    return await run_in_threadpool(_experiments_page, state, namespace, labels, fields,
                                   list_key("experiments", namespace, label_selector, field_selector), limit, continue_)


def _experiments_page(state: ServerState, namespace: str, labels: selectors.Labels, fields: selectors.Fields,
                      list_key: tuple[str, ...], limit: int | None, continue_: str | None) -> KubeExperimentList:
    key = list_key[2] or None
    at = _paging.start(continue_, "experiment-objects", namespace, key)
    recs, following = experiment_page(state.store, _paging.page_size(limit, state.limits.page), state.limits.list_bytes,
                                      at.experiment if at else 0, namespace)
    items = [views.experiment(r) for r in recs]
    metadata = {"resourceVersion": ""}
    if following is not None:
        metadata["continue"] = _paging.encode("experiment-objects", namespace, key, _paging.Position(following, ""))
    kept = [i for i in items if selectors.labels_match(i.metadata.labels or {}, labels)]
    if fields:
        kept = [i for i in kept if selectors.fields_match({"metadata": {"name": i.metadata.name, "namespace": namespace}}, fields)]
    if following is None and not continue_ and len(kept) <= _watch.MAX_OBJECTS:
        metadata["resourceVersion"] = list_version(state, list_key, [i.model_dump(mode="json", by_alias=True, exclude_none=True)
                                                                 for i in kept], False)
    return KubeExperimentList(api_version=API_VERSION, kind="ExperimentList", metadata=metadata, items=kept)


@router.get(PREFIX + "/experiments/{name}", operation_id="kubeGetExperiment",
            response_model=views.ExperimentObject, response_model_exclude_none=True)
def get_experiment(namespace: str, name: str, state: ServerState = Depends(get_state)) -> views.ExperimentObject:
    return views.experiment(state.store.get_experiment(namespace, name))


@router.patch(PREFIX + "/experiments/{name}", operation_id="kubePatchExperiment",
              openapi_extra=experiment_body("application/merge-patch+json", "application/json", json_patch=True),
              response_model=views.ExperimentObject, response_model_exclude_none=True)
async def patch_experiment(namespace: str, name: str, request: Request, dry_run: str | None = DRY_RUN,
                           state: ServerState = Depends(get_state)) -> views.ExperimentObject:
    """A merge patch (the SDK sends the whole object) or a JSON patch (``kubectl patch
    --type=json``): only the budget may change. ``dryRun=All``: checked and answered as
    it would be, nothing changed."""
    doc = await read_document(request)
    return await asyncio.to_thread(_service.patch, state, namespace, name, doc, dry_run_all(request))


@router.delete(PREFIX + "/experiments/{name}", operation_id="kubeDeleteExperiment")
async def delete_experiment(namespace: str, name: str, request: Request, dry_run: str | None = DRY_RUN,
                            state: ServerState = Depends(get_state)) -> dict[str, Any]:
    """Delete the experiment, its trials and their files. A dry run (``?dryRun=All``, or
    ``dryRun: [All]`` in the DeleteOptions body, as kubectl sends it) only finds it; a
    ``preconditions.uid`` that is not the experiment's is a 409, as in Kubernetes."""
    options = await delete_options(request)
    await asyncio.to_thread(_service.delete, state, namespace, name, options, dry_run_all(request))
    return {"apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Success",
            "details": {"name": name, "group": "kubeflow.org", "kind": "experiments"}}


@router.get(PREFIX + "/trials", response_model=None)
async def list_trials(request: Request, namespace: str, label_selector: str | None = Query(None, alias="labelSelector"),
                      field_selector: str | None = FIELD_SELECTOR, limit: int | None = _paging.LIMIT,
                      continue_: str | None = _paging.CONTINUE, watch: bool = WATCH,
                      timeout_seconds: int | None = TIMEOUT, state: ServerState = Depends(get_state)) -> Any:
    """The namespace's trials (of the experiments a selector names), oldest experiment
    first and each one's trials oldest first, a page at a time: at most ``limit`` and the
    server's page (``KATIB_MAX_PAGE``); while more follow, ``metadata.continue`` is the
    token to pass as ``?continue=`` (with the same ``labelSelector``) for the next page.
    Without ``limit`` a page is the server's whole page: the Katib SDK's ``list_trials``,
    which asks once, gets every trial of an experiment smaller than that. With ``watch``,
    a stream of their changes instead."""
    labels = selectors.labels(label_selector)
    fields = selectors.fields(field_selector, "Trial")
    named = name_asked(fields)

    def keep(t: TrialRecord) -> bool:
        return selectors.labels_match(t.labels, labels) and (named is None or t.name == named)

    if watch:
        def watched() -> list[dict[str, Any]]:
            if named is not None:
                found = or_none(state.store.get_trial, namespace, named)
                return [views.trial_object(*found)] if found is not None and keep(found[1]) else []
            return whole_reading(_paging.walk_trials(
                state.store, _paging.heads(state.store, namespace, None, of_experiment(labels)), None,
                lambda rec, t: [views.trial_object(rec, t)], _paging.chunk_for(_watch.MAX_OBJECTS),
                keep=scan_cap(keep), budget=_paging.Budget(state.limits.list_bytes, _watch.MAX_OBJECTS)))

        return await watch_of(request, state, namespace, "Trial", watched, fields,
                               list_key("trials", namespace, label_selector, field_selector), timeout_seconds)
    key = selectors.paging_key(label_selector, field_selector)

    def page() -> JSONResponse:
        size = _paging.page_size(limit, state.limits.page)
        at = _paging.start(continue_, "trials", namespace, key)
        heads = _paging.heads(state.store, namespace, at, of_experiment(labels))
        walk = _paging.walk_trials(state.store, heads, at, lambda rec, t: [views.trial_object(rec, t)], _paging.chunk_for(size),
                                   keep=keep, budget=_paging.Budget(state.limits.list_bytes, size))
        items, spot = _paging.fill(walk, size)
        token = _paging.next_token(state.store, spot, "trials", namespace, key)
        # Serialised directly: thousands of plain dicts need no model validation.
        found = [o for o in _paging.built(items) if selectors.fields_match(o, fields)]
        listed = _paging.kube_list("Trial", found, token, API_VERSION)
        if not continue_:
            listed["metadata"]["resourceVersion"] = list_version(state, list_key("trials", namespace, label_selector, field_selector),
                                                             found, token is not None)
        return JSONResponse(listed)

    return await run_in_threadpool(page)


@router.get(PREFIX + "/trials/{name}", response_model=Trial, response_model_exclude_none=True)
def get_trial(namespace: str, name: str, state: ServerState = Depends(get_state)) -> Trial:
    rec, t = state.store.get_trial(namespace, name)
    return views.trial(rec, t)


def _suggestion(state: ServerState, rec: ExperimentRecord) -> dict[str, Any]:
    """The experiment's Suggestion. Katib's ``status.suggestions`` lists every assignment
    the algorithm made (one per trial); here it holds the most recent of them, at most the
    server's page (``KATIB_MAX_PAGE``), oldest first, so one object is never bigger than a
    page of trials: all of them for an experiment smaller than that. ``suggestionCount``
    and ``spec.requests`` count every one; ``…/trials?limit=&continue=`` pages them all."""
    spec = rec.spec.get("spec", {})
    count = rec.status.trials or 0
    trials = _paging.recent_trials(state.store, rec, state.limits.page)
    # Katib ends a LongRunning experiment's Suggestion never (it waits for a budget edit).
    done = is_completed(rec.status) and spec.get("resumePolicy") != "LongRunning"
    # Katib's words (MarkSuggestionStatusSucceeded, cleanupSuggestionResources).
    running = ({"type": "Running", "status": "False", "reason": "Suggestion is succeeded", "message": "Suggestion is not running"}
               if done else
               {"type": "Running", "status": "True", "reason": "SuggestionRunning", "message": "Suggestion is running"})
    conditions = [{"type": "Created", "status": "True", "reason": "SuggestionCreated", "message": "Suggestion is created"},
                  running]
    if done:
        kept = ("suggestion volume is not deleted, can be restarted" if spec.get("resumePolicy") == "FromVolume"
                else "can't be restarted")
        conditions.append({"type": "Succeeded", "status": "True", "reason": "Experiment is succeeded",
                           "message": f"Suggestion is succeeded, {kept}"})
    return {
        "apiVersion": API_VERSION, "kind": "Suggestion",
        "metadata": {"name": rec.name, "namespace": rec.namespace, "labels": {EXPERIMENT_LABEL: rec.name},
                     "creationTimestamp": rfc3339(rec.created_at),
                     "ownerReferences": [{"apiVersion": API_VERSION, "kind": "Experiment", "name": rec.name, "uid": rec.uid}]},
        "spec": {"algorithm": spec.get("algorithm"), "earlyStopping": spec.get("earlyStopping"),
                 "requests": count, "resumePolicy": spec.get("resumePolicy", "Never")},
        "status": {"suggestionCount": count, "conditions": conditions,
                   "suggestions": [{"name": t.name, "parameterAssignments": t.assignments, "labels": t.labels} for t in trials]},
    }


@router.get(PREFIX + "/suggestions")
async def list_suggestions(request: Request, namespace: str, label_selector: str | None = Query(None, alias="labelSelector"),
                           field_selector: str | None = FIELD_SELECTOR,
                           limit: int | None = _paging.LIMIT, continue_: str | None = _paging.CONTINUE,
                           watch: bool = WATCH, timeout_seconds: int | None = TIMEOUT,
                           state: ServerState = Depends(get_state)) -> Any:
    """A Suggestion per experiment of the namespace, oldest first, a page at a time: at
    most ``limit`` of them, and while they embed at most the server's page of
    ``status.suggestions`` together (a page holds its first one whatever it embeds: at
    most a page, see ``getSuggestion``); ``metadata.continue`` while more follow. With
    ``watch``, a stream of their changes instead."""
    labels = selectors.labels(label_selector)
    fields = selectors.fields(field_selector, "Suggestion")

    def kept(objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [o for o in objs if selectors.labels_match(o["metadata"].get("labels") or {}, labels)
                and selectors.fields_match(o, fields)]

    if watch:
        def watched() -> list[dict[str, Any]]:
            recs = watched_experiments(state, namespace, labels, fields)
            # each embeds its most recent trials: together at most the server's page, as a page of the list
            embedded = sum(min(r.status.trials or 0, state.limits.page) for r in recs)
            if embedded > state.limits.page and len(recs) > 1:
                raise _watch.too_many()
            return kept([_suggestion(state, r) for r in recs])

        return await watch_of(request, state, namespace, "Suggestion", watched, fields,
                               list_key("suggestions", namespace, label_selector, field_selector), timeout_seconds)

    def page() -> dict[str, Any]:
        size = _paging.page_size(limit, state.limits.page)
        key = selectors.paging_key(label_selector, field_selector)
        at = _paging.start(continue_, "suggestions", namespace, key)
        walk = _paging.walk_embedding(_paging.heads(state.store, namespace, at), at, state.limits.page,
                                      lambda rec: _suggestion(state, rec), _paging.Budget(state.limits.list_bytes))
        items, spot = _paging.fill(walk, size, budget=state.limits.page)
        token = _paging.next_token(state.store, spot, "suggestions", namespace, key)
        found = kept(_paging.built(items))
        listed = _paging.kube_list("Suggestion", found, token, API_VERSION)
        if not continue_:
            listed["metadata"]["resourceVersion"] = list_version(state, list_key("suggestions", namespace, label_selector, field_selector),
                                                             found, token is not None)
        return listed

    return await run_in_threadpool(page)


@router.get(PREFIX + "/suggestions/{name}", operation_id="getSuggestion")
def get_suggestion(namespace: str, name: str, state: ServerState = Depends(get_state)) -> dict[str, Any]:
    """The experiment's Suggestion: ``status.suggestions`` holds its most recent trials'
    assignments, at most the server's page (``KATIB_MAX_PAGE``); ``suggestionCount`` counts them all."""
    return _suggestion(state, state.store.get_experiment(namespace, name))
