"""The web viewer: its static page (``/``, assets under ``/ui``, no build step), the
aggregated reads its experiment page makes (``…/summary``, ``…/importance``, ``…/yaml``),
a trial's YAML, and the notes on experiments and trials (``…/note``: GET, PUT)."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict

from katib import views
from katib.errors import FieldError, ValidationError
from katib.spec import dump_yaml
from katib.store import Note, NoteStore, latest_trial

from .. import _service, _summary
from .._auth import current_user
from .._state import ServerState, get_state
from .._static import accepts_gzip

STATIC = Path(__file__).resolve().parents[1] / "static"

page = APIRouter(include_in_schema=False)
router = APIRouter(prefix="/api/v1", tags=["viewer"])


@page.get("/")
def index() -> FileResponse:
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


@router.get("/namespaces/{namespace}/experiments/{name}/summary")
async def summary(namespace: str, name: str, request: Request, curves: int = Query(100, ge=0, le=1000),
                  points: int = Query(50, ge=2, le=1000), since: float | None = Query(None),
                  state: ServerState = Depends(get_state)) -> Response:
    """The experiment's trials as columns, a sample of learning curves, down-sampled; with
    ``since`` (the ``now`` of an earlier answer) only the trials written after it. A full
    answer carries an ``ETag``: ``If-None-Match`` with it is a 304 while nothing changed,
    and the answer is compressed once per version, not per request."""
    from .experiments import FAILED, controls

    if since is not None and not math.isfinite(since):
        raise ValidationError([FieldError("since", f"must be a finite number (the now of an earlier answer; got {since})")],
                              "request")
    rec = state.store.get_experiment(namespace, name)
    last = latest_trial(state.store, rec.id, FAILED)
    extra = {**controls(state, rec), "readOnly": state.read_only,
             "executor": (rec.spec.get("spec") or {}).get("executor"),
             "lastFailure": views.last_failure([last] if last else [])}
    etag = None
    if since is None:
        etag = await asyncio.to_thread(_summary.summary_etag, state.store, rec, curves, points, extra)
        headers = {"ETag": etag, "Cache-Control": "no-cache", "Vary": "Accept-Encoding"}
        if etag in [t.strip() for t in request.headers.get("if-none-match", "").split(",")]:
            return Response(status_code=304, headers=headers)
        body = _summary.kept_body(etag)
        if body is not None:
            return _gzipped(request, body, headers)
    result = await asyncio.to_thread(_summary.experiment_summary, state.store, rec, curves, points, since)
    result.update(extra)
    # Serialised directly: columns of 100,000 values need no model validation (and an
    # ended experiment's are encoded once).
    raw = _summary.encode(result)
    if etag is None:
        return Response(raw, media_type="application/json")
    body = await asyncio.to_thread(_summary.keep_body, etag, raw)
    return _gzipped(request, body, headers)


def _gzipped(request: Request, body: bytes, headers: dict[str, str]) -> Response:
    """A kept (gzipped) answer as it is, or unpacked for a client that takes no gzip."""
    import gzip

    if accepts_gzip(request.headers):
        return Response(body, media_type="application/json", headers={**headers, "Content-Encoding": "gzip"})
    return Response(gzip.decompress(body), media_type="application/json", headers=headers)


@router.get("/namespaces/{namespace}/experiments/{name}/importance")
async def importance(namespace: str, name: str, state: ServerState = Depends(get_state)) -> dict[str, float]:
    """fANOVA importance of each parameter for the objective (over at most 1,000 trials)."""
    rec = state.store.get_experiment(namespace, name)
    return await asyncio.to_thread(_summary.importance, state.store, rec)


@router.get("/namespaces/{namespace}/experiments/{name}/yaml", response_class=PlainTextResponse)
def experiment_yaml(namespace: str, name: str, state: ServerState = Depends(get_state)) -> str:
    obj = views.experiment_object(state.store.get_experiment(namespace, name))
    obj.pop("status", None)
    return dump_yaml(obj)


@router.get("/namespaces/{namespace}/trials/{trial}/yaml", response_class=PlainTextResponse)
def trial_yaml(namespace: str, trial: str, state: ServerState = Depends(get_state)) -> str:
    """The trial as a Katib ``Trial`` object, in YAML (its status included)."""
    rec, t = _service.trial(state, namespace, trial)
    return dump_yaml(views.trial_object(rec, t))


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
