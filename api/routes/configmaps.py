"""``/api/v1/namespaces/{namespace}/configmaps``: the ConfigMaps that hold trial templates
(``spec.trialTemplate.configMap``), as ``kubectl`` and the Kubernetes client create them."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, Request

from .. import _configmaps, _paging
from .._documents import read_document
from .._state import ServerState, get_state

router = APIRouter(tags=["kubernetes"])
PREFIX = "/api/v1/namespaces/{namespace}/configmaps"


@router.post(PREFIX, status_code=201)
async def create_configmap(namespace: str, request: Request, state: ServerState = Depends(get_state)) -> dict[str, Any]:
    """Store a ConfigMap (409 when its name is taken)."""
    doc = await read_document(request)
    return await asyncio.to_thread(_configmaps.create, state, namespace, doc)


@router.get(PREFIX)
def list_configmaps(namespace: str, limit: int | None = _paging.LIMIT, continue_: str | None = _paging.CONTINUE,
                    state: ServerState = Depends(get_state)) -> dict[str, Any]:
    """A page of the namespace's ConfigMaps by name (``limit``, ``continue`` as Kubernetes
    pages a list; at most the server's page and about its list bytes)."""
    items, more = _configmaps.listing(state, namespace, limit, continue_)
    metadata: dict[str, Any] = {"resourceVersion": ""}
    if more:
        metadata["continue"] = more
    return {"apiVersion": "v1", "kind": "ConfigMapList", "metadata": metadata, "items": items}


@router.get(PREFIX + "/{configmap}")
def get_configmap(namespace: str, configmap: str, state: ServerState = Depends(get_state)) -> dict[str, Any]:
    return _configmaps.get(state, namespace, configmap)


@router.delete(PREFIX + "/{configmap}")
def delete_configmap(namespace: str, configmap: str, state: ServerState = Depends(get_state)) -> dict[str, Any]:
    return _configmaps.delete(state, namespace, configmap)
