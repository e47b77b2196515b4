"""The part of Kubeflow Trainer's API (``/apis/trainer.kubeflow.org/v1alpha1``) the Kubeflow
SDK calls: training runtimes (cluster-wide and per namespace: get and list) and the
TrainJobs that trials of a TrainJob template are (get and list); and the core ``events``
of trials. The runtimes are the built-in ``torch-distributed`` and those in the manifests
``$KATIB_RUNTIMES`` names when the server starts (``TrainingRuntime``s in the namespace of
their ``metadata.namespace``); they are read-only here, so no tenant changes another's, or
the cluster's, runtimes."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from katib.errors import FieldError, NotFoundError, ValidationError
from katib.optimizationjobs import optimization_job_object
from katib.runtimes import CLUSTER_KIND, NAMESPACED_KIND, TRAINER_API_VERSION, registry
from katib.store import ExperimentRecord, TrialRecord

from .. import _paging, _service, _trainjobs, _watch
from .. import _selectors as selectors
from .._documents import delete_options, read_document
from .._state import ServerState, get_state
from ._kubelists import (
    DRY_RUN,
    TIMEOUT,
    WATCH,
    dry_run_all,
    list_key,
    list_version,
    scan_cap,
    watch_of,
    whole_reading,
)

router = APIRouter(tags=["kubeflow trainer"])
ROOT = f"/apis/{TRAINER_API_VERSION}"
CLUSTER = ROOT + "/clustertrainingruntimes"
NAMESPACED = ROOT + "/namespaces/{namespace}/trainingruntimes"
TRAINJOBS = ROOT + "/namespaces/{namespace}/trainjobs"
OPTIMIZATIONJOBS = ROOT + "/namespaces/{namespace}/optimizationjobs"


def _list(kind: str, items: list[dict[str, Any]], api_version: str = TRAINER_API_VERSION) -> dict[str, Any]:
    return {"apiVersion": api_version, "kind": f"{kind}List", "metadata": {"resourceVersion": ""}, "items": items}


def _get(kind: str, name: str, namespace: str | None) -> dict[str, Any]:
    found = registry().get(kind, name, namespace)
    if found is None:
        where = f" in namespace {namespace!r}" if namespace else ""
        raise NotFoundError(f"{kind} {name!r} not found{where}")
    return found


@router.get(CLUSTER)
def list_cluster_runtimes() -> dict[str, Any]:
    return _list(CLUSTER_KIND, registry().list(CLUSTER_KIND))


@router.get(CLUSTER + "/{runtime}")
def get_cluster_runtime(runtime: str) -> dict[str, Any]:
    return _get(CLUSTER_KIND, runtime, None)


@router.get(NAMESPACED)
def list_runtimes(namespace: str) -> dict[str, Any]:
    return _list(NAMESPACED_KIND, registry().list(NAMESPACED_KIND, namespace))


@router.get(NAMESPACED + "/{runtime}")
def get_runtime(namespace: str, runtime: str) -> dict[str, Any]:
    return _get(NAMESPACED_KIND, runtime, namespace)


@router.get(TRAINJOBS)
def list_trainjobs(namespace: str, limit: int | None = _paging.LIMIT, continue_: str | None = _paging.CONTINUE,
                   state: ServerState = Depends(get_state)) -> dict[str, Any]:
    """Every trial of a TrainJob template in the namespace, as its TrainJob, oldest
    experiment first and each one's trials oldest first, a page at a time: at most
    ``limit`` and the server's page (``KATIB_MAX_PAGE``); while more follow,
    ``metadata.continue`` is the token to pass as ``?continue=`` for the next page."""
    size = _paging.page_size(limit, state.limits.page)
    at = _paging.start(continue_, "trainjobs", namespace, None)

    def jobs(rec: ExperimentRecord, t: TrialRecord) -> list[dict[str, Any]]:
        job = _trainjobs.trainjob_of(rec, t)
        return [job] if job is not None else []

    # Only the experiments whose trials may be TrainJobs (a column written with the spec).
    heads = _paging.heads(state.store, namespace, at, trainjob=True)
    walk = _paging.walk_trials(state.store, heads, at, jobs, _paging.chunk_for(size),
                               budget=_paging.Budget(state.limits.list_bytes, size))
    items, spot = _paging.fill(walk, size)
    token = _paging.next_token(state.store, spot, "trainjobs", namespace, None)
    return _paging.kube_list("TrainJob", _paging.built(items), token, TRAINER_API_VERSION)


@router.get(TRAINJOBS + "/{trial}")
def get_trainjob(namespace: str, trial: str, state: ServerState = Depends(get_state)) -> dict[str, Any]:
    rec, t = state.store.get_trial(namespace, trial)
    job = _trainjobs.trainjob_of(rec, t)
    if job is None:
        raise NotFoundError(f"TrainJob {trial!r} not found in namespace {namespace!r} (trial {trial} is not a TrainJob)")
    return job


def _optimization_job(state: ServerState, rec: ExperimentRecord) -> dict[str, Any] | None:
    """The experiment as its OptimizationJob (None: it is not one). ``status.trials`` holds
    its most recent trials, at most the server's page (``KATIB_MAX_PAGE``), oldest first,
    so one object is never bigger than a page of trials (all of them for a job smaller
    than that); ``nextTrialIndex`` counts every trial."""
    job = optimization_job_object(rec, _paging.recent_trials(state.store, rec, state.limits.page))
    if job is not None:
        job["status"]["nextTrialIndex"] = rec.status.trials or 0
    return job


@router.get(OPTIMIZATIONJOBS)
def list_optimizationjobs(namespace: str, limit: int | None = _paging.LIMIT, continue_: str | None = _paging.CONTINUE,
                          state: ServerState = Depends(get_state)) -> dict[str, Any]:
    """Every experiment of the namespace written from an OptimizationJob, as one (with
    status.result and status.trials), oldest first, a page at a time: at most ``limit``
    of them, and while they embed at most the server's page of ``status.trials`` together
    (a page holds its first one whatever it embeds: at most a page); ``metadata.continue``
    while more follow. They are created as experiments are: POST the OptimizationJob to
    /api/v1/namespaces/{namespace}/experiments."""
    size = _paging.page_size(limit, state.limits.page)
    at = _paging.start(continue_, "optimizationjobs", namespace, None)
    # Only the experiments written from an OptimizationJob (a column written with the spec,
    # as ``source_of`` reads it): none other is read.
    heads = _paging.heads(state.store, namespace, at, optimization_job=True)
    walk = _paging.walk_embedding(heads, at, state.limits.page, lambda rec: _optimization_job(state, rec) or {},
                                  _paging.Budget(state.limits.list_bytes))
    items, spot = _paging.fill(walk, size, budget=state.limits.page)
    token = _paging.next_token(state.store, spot, "optimizationjobs", namespace, None)
    return _paging.kube_list("OptimizationJob", _paging.built(items), token, TRAINER_API_VERSION)


@router.post(OPTIMIZATIONJOBS, status_code=201)
async def create_optimizationjob(namespace: str, request: Request, dry_run: str | None = DRY_RUN,
                                 state: ServerState = Depends(get_state)) -> dict[str, Any]:
    """Create an OptimizationJob (``kubectl create -f job.yaml``): the experiment it is, run
    as one POSTed to ``…/experiments``; the answer is the OptimizationJob. Only that kind."""
    doc = await read_document(request)
    kind = doc.get("kind") if isinstance(doc, dict) else None
    if kind != "OptimizationJob":
        raise ValidationError([FieldError("kind", f"must be OptimizationJob at this URL (got {kind!r}); an Experiment is "
                                                  f"created at /apis/kubeflow.org/v1beta1/namespaces/{namespace}/experiments")])
    obj = await run_in_threadpool(_service.create, state, doc, namespace, dry_run_all(request))
    if dry_run_all(request):
        return {**doc, "metadata": {**(doc.get("metadata") or {}), "namespace": namespace,
                                    "name": obj["metadata"]["name"]}}
    rec = state.store.get_experiment(namespace, obj["metadata"]["name"])
    return _optimization_job(state, rec) or obj


@router.delete(OPTIMIZATIONJOBS + "/{name}")
async def delete_optimizationjob(namespace: str, name: str, request: Request, dry_run: str | None = DRY_RUN,
                                 state: ServerState = Depends(get_state)) -> dict[str, Any]:
    """Delete an OptimizationJob: its experiment, trials and files (as ``…/experiments``'s
    delete, with its dry run and uid precondition); a Katib Experiment is not one (404)."""
    rec = state.store.get_experiment(namespace, name)
    if optimization_job_object(rec, []) is None:
        raise NotFoundError(f"OptimizationJob {name!r} not found in namespace {namespace!r} (experiment {name} is a "
                            "Katib Experiment)")
    options = await delete_options(request)
    await run_in_threadpool(_service.delete, state, namespace, name, options, dry_run_all(request))
    return {"apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Success",
            "details": {"name": name, "group": "trainer.kubeflow.org", "kind": "optimizationjobs"}}


@router.get(OPTIMIZATIONJOBS + "/{name}")
def get_optimizationjob(namespace: str, name: str, state: ServerState = Depends(get_state)) -> dict[str, Any]:
    """The experiment as its OptimizationJob; ``status.trials`` holds its most recent
    trials, at most the server's page (``KATIB_MAX_PAGE``); ``nextTrialIndex`` counts them all."""
    rec = state.store.get_experiment(namespace, name)
    job = _optimization_job(state, rec)
    if job is None:
        raise NotFoundError(f"OptimizationJob {name!r} not found in namespace {namespace!r} (experiment {name} is a Katib Experiment)")
    return job


@router.get("/api/v1/namespaces/{namespace}/events", response_model=None)
async def list_events(request: Request, namespace: str, field_selector: str | None = Query(None, alias="fieldSelector"),
                      limit: int | None = _paging.LIMIT, continue_: str | None = _paging.CONTINUE,
                      watch: bool = WATCH, timeout_seconds: int | None = TIMEOUT,
                      state: ServerState = Depends(get_state)) -> Any:
    """The events of every trial in the namespace (its job created, running, ended), a
    page at a time: at most ``limit`` and the server's page (``KATIB_MAX_PAGE``),
    ``metadata.continue`` while more follow. Pages follow the experiments and their trials
    in the order they were created; within a page the events are oldest first (so an
    answer of one page, every namespace with fewer events than a page, is all of them
    oldest first; the Kubeflow SDK sorts what it reads anyway). With ``watch``, a stream
    of new events (``kubectl get events -w``), as for trials."""
    fields = selectors.fields(field_selector, "Event")
    key = selectors.paging_key(None, field_selector)

    def walk_from(at: _paging.Position | None, size: int, keep: Any = None) -> Any:
        # An event is made of its trial and the experiment's namespace: no experiment is read whole.
        return _paging.walk_trials(state.store, _paging.heads(state.store, namespace, at), at,
                                   lambda rec, t: [e for e in _trainjobs.events(rec, [t]) if selectors.fields_match(e, fields)],
                                   _paging.chunk_for(size), keep=keep)

    if watch:
        def watched() -> list[dict[str, Any]]:
            return whole_reading(walk_from(None, _watch.MAX_OBJECTS, scan_cap()))

        return await watch_of(request, state, namespace, "Event", watched, fields,
                              list_key("events", namespace, None, field_selector), timeout_seconds)

    def page() -> dict[str, Any]:
        size = _paging.page_size(limit, state.limits.page)
        built, spot = _paging.fill(walk_from(_paging.start(continue_, "events", namespace, key), size), size)
        items = sorted(_paging.built(built), key=lambda e: e["firstTimestamp"] or "")
        token = _paging.next_token(state.store, spot, "events", namespace, key)
        listed = _paging.kube_list("Event", items, token, "v1")
        if not continue_:  # a version kubectl get events -w watches from
            listed["metadata"]["resourceVersion"] = list_version(state, list_key("events", namespace, None, field_selector),
                                                                 items, token is not None)
        return listed

    return await run_in_threadpool(page)
