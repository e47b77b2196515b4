"""The web viewer: its static page (``/``, assets under ``/ui``, no build step), the
aggregated reads its experiment page makes (``…/summary``, ``…/importance``, ``…/yaml``),
a trial's YAML, and the notes on experiments and trials (``…/note``: GET, PUT)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import yaml
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict

from katib import views
from katib.store import Note, NoteStore

from .. import _service, _summary
from .._auth import current_user
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
                  state: ServerState = Depends(get_state)) -> Response:
    """The experiment's trials as columns, a sample of learning curves, down-sampled; with
    ``since`` (the ``now`` of an earlier answer) only the trials written after it."""
    rec = state.store.get_experiment(namespace, name)
    result = await asyncio.to_thread(_summary.experiment_summary, state.store, rec, curves, points, since)
    from .experiments import FAILED, controls

    result.update(controls(state, rec), readOnly=state.read_only, executor=(rec.spec.get("spec") or {}).get("executor"),
                  lastFailure=views.last_failure(state.store.list_trials(rec.id, states=FAILED)))
    # Serialised directly: columns of 100,000 values need no model validation (and an
    # ended experiment's are encoded once).
    return Response(_summary.encode(result), media_type="application/json")


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


@router.get("/namespaces/{namespace}/trials/{trial}/yaml", response_class=PlainTextResponse)
def trial_yaml(namespace: str, trial: str, state: ServerState = Depends(get_state)) -> str:
    """The trial as a Katib ``Trial`` object, in YAML (its status included)."""
    rec, t = _service.trial(state, namespace, trial)
    return yaml.safe_dump(views.trial_object(rec, t), sort_keys=False)


class NoteBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str


def _note(note: Note | None, state: ServerState) -> dict[str, Any]:
    return {"text": note.text if note else "", "author": note.author if note else None,
            "updatedAt": note.updated_at if note else None, "readOnly": state.read_only}


def _write_note(state: ServerState, request: Request, exp_id: int, trial_id: int | None, text: str) -> dict[str, Any]:
    user = current_user(request)
    note = NoteStore(state.store).set(exp_id, text, trial_id, author=user.name if user else None)
    return _note(note, state)


@router.get("/namespaces/{namespace}/experiments/{name}/note", operation_id="getExperimentNote")
def experiment_note(namespace: str, name: str, state: ServerState = Depends(get_state)) -> dict[str, Any]:
    """The experiment's note: ``{text, author, updatedAt, readOnly}`` (text "" when none)."""
    rec = state.store.get_experiment(namespace, name)
    return _note(NoteStore(state.store).get(rec.id), state)


@router.put("/namespaces/{namespace}/experiments/{name}/note", operation_id="putExperimentNote")
async def put_experiment_note(namespace: str, name: str, body: NoteBody, request: Request,
                              state: ServerState = Depends(get_state)) -> dict[str, Any]:
    """Write the experiment's note (editor role); an empty text removes it."""
    rec = state.store.get_experiment(namespace, name)
    return await asyncio.to_thread(_write_note, state, request, rec.id, None, body.text)


@router.get("/namespaces/{namespace}/trials/{trial}/note", operation_id="getTrialNote")
def trial_note(namespace: str, trial: str, state: ServerState = Depends(get_state)) -> dict[str, Any]:
    """The trial's note, as the experiment's."""
    rec, t = _service.trial(state, namespace, trial)
    return _note(NoteStore(state.store).get(rec.id, t.id), state)


@router.put("/namespaces/{namespace}/trials/{trial}/note", operation_id="putTrialNote")
async def put_trial_note(namespace: str, trial: str, body: NoteBody, request: Request,
                         state: ServerState = Depends(get_state)) -> dict[str, Any]:
    """Write the trial's note (editor role); an empty text removes it."""
    rec, t = _service.trial(state, namespace, trial)
    return await asyncio.to_thread(_write_note, state, request, rec.id, t.id, body.text)
