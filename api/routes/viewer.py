"""The web viewer: its static page (``/``, assets under ``/ui``, no build step) and the
aggregated reads its experiment page makes (``…/summary``, ``…/importance``, ``…/yaml``)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import yaml
from fastapi import APIRouter, Depends, Query
from fastapi.responses import FileResponse, PlainTextResponse

from katib import views

from .. import _summary
from .._state import ServerState, get_state

STATIC = Path(__file__).resolve().parents[1] / "static"

page = APIRouter(include_in_schema=False)
router = APIRouter(prefix="/api/v1", tags=["viewer"])


@page.get("/")
def index() -> FileResponse:
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


@router.get("/namespaces/{namespace}/experiments/{name}/summary")
async def summary(namespace: str, name: str, curves: int = Query(100, ge=0, le=1000),
                  points: int = Query(50, ge=2, le=1000), since: float | None = Query(None),
                  state: ServerState = Depends(get_state)) -> dict[str, Any]:
    """The experiment's trials as columns, a sample of learning curves, down-sampled; with
    ``since`` (the ``now`` of an earlier answer) only the trials written after it."""
    rec = state.store.get_experiment(namespace, name)
    result = await asyncio.to_thread(_summary.experiment_summary, state.store, rec, curves, points, since)
    from .experiments import FAILED, controls

    result.update(controls(state, rec), readOnly=state.read_only, executor=(rec.spec.get("spec") or {}).get("executor"),
                  lastFailure=views.last_failure(state.store.list_trials(rec.id, states=FAILED)))
    return result


@router.get("/namespaces/{namespace}/experiments/{name}/importance")
async def importance(namespace: str, name: str, state: ServerState = Depends(get_state)) -> dict[str, float]:
    """fANOVA importance of each parameter for the objective (over at most 1,000 trials)."""
    rec = state.store.get_experiment(namespace, name)
    return await asyncio.to_thread(_summary.importance, state.store, rec)


@router.get("/namespaces/{namespace}/experiments/{name}/yaml", response_class=PlainTextResponse)
def experiment_yaml(namespace: str, name: str, state: ServerState = Depends(get_state)) -> str:
    obj = views.experiment_object(state.store.get_experiment(namespace, name))
    obj.pop("status", None)
    return yaml.safe_dump(obj, sort_keys=False)
