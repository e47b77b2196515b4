"""The part of Kubeflow Trainer's API (``/apis/trainer.kubeflow.org/v1alpha1``) the Kubeflow
SDK calls: training runtimes (cluster-wide and per namespace: get and list) and the
TrainJobs that trials of a TrainJob template are (get and list); and the core ``events``
of trials. The runtimes are the built-in ``torch-distributed`` and those in the manifests
``$KATIB_RUNTIMES`` names when the server starts (``TrainingRuntime``s in the namespace of
their ``metadata.namespace``); they are read-only here, so no tenant changes another's, or
the cluster's, runtimes."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from katib.errors import NotFoundError
from katib.optimizationjobs import optimization_job_object
from katib.runtimes import CLUSTER_KIND, NAMESPACED_KIND, TRAINER_API_VERSION, registry

from .. import _trainjobs
from .._state import ServerState, get_state

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
def list_trainjobs(namespace: str, state: ServerState = Depends(get_state)) -> dict[str, Any]:
    """Every trial of a TrainJob template in the namespace, as its TrainJob."""
    items = []
    for rec in state.store.list_experiments(namespace):
        for t in state.store.list_trials(rec.id):
            job = _trainjobs.trainjob_of(rec, t)
            if job is not None:
                items.append(job)
    return _list("TrainJob", items)


@router.get(TRAINJOBS + "/{trial}")
def get_trainjob(namespace: str, trial: str, state: ServerState = Depends(get_state)) -> dict[str, Any]:
    rec, t = state.store.get_trial(namespace, trial)
    job = _trainjobs.trainjob_of(rec, t)
    if job is None:
        raise NotFoundError(f"TrainJob {trial!r} not found in namespace {namespace!r} (trial {trial} is not a TrainJob)")
    return job


@router.get(OPTIMIZATIONJOBS)
def list_optimizationjobs(namespace: str, state: ServerState = Depends(get_state)) -> dict[str, Any]:
    """Every experiment of the namespace written from an OptimizationJob, as one (with
    status.result and status.trials). They are created as experiments are: POST the
    OptimizationJob to /api/v1/namespaces/{namespace}/experiments."""
    items = []
    for rec in state.store.list_experiments(namespace):
        job = optimization_job_object(rec, state.store.list_trials(rec.id))
        if job is not None:
            items.append(job)
    return _list("OptimizationJob", items)


@router.get(OPTIMIZATIONJOBS + "/{name}")
def get_optimizationjob(namespace: str, name: str, state: ServerState = Depends(get_state)) -> dict[str, Any]:
    rec = state.store.get_experiment(namespace, name)
    job = optimization_job_object(rec, state.store.list_trials(rec.id))
    if job is None:
        raise NotFoundError(f"OptimizationJob {name!r} not found in namespace {namespace!r} (experiment {name} is a Katib Experiment)")
    return job


@router.get("/api/v1/namespaces/{namespace}/events")
def list_events(namespace: str, state: ServerState = Depends(get_state)) -> dict[str, Any]:
    """The events of every experiment and trial in the namespace, oldest first."""
    items = []
    for rec in state.store.list_experiments(namespace):
        items += _trainjobs.events(rec, state.store.list_trials(rec.id))
    items.sort(key=lambda e: e["firstTimestamp"] or "")
    return _list("Event", items, "v1")
