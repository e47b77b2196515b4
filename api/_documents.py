"""Request bodies: an experiment as JSON or YAML, JSON merge patches, and the
DeleteOptions a Kubernetes client sends with a delete."""

from __future__ import annotations

import asyncio
import copy
import json
from typing import Any

from fastapi import Request

from katib.errors import FieldError, ValidationError
from katib.spec import load_documents, load_json


def experiment_body(*json_types: str, json_patch: bool = False) -> dict[str, Any]:
    """OpenAPI for a route whose body is an Experiment, as JSON (typed by the model) or YAML
    (or, with ``json_patch``, a JSON patch's operations)."""
    ref = {"$ref": "#/components/schemas/Experiment"}
    content: dict[str, Any] = {t: {"schema": ref} for t in json_types or ("application/json",)}
    content["application/yaml"] = {"schema": {"type": "string", "description": "the Experiment as YAML"}}
    if json_patch:
        op = {"type": "object", "required": ["op", "path"],
              "properties": {"op": {"type": "string", "enum": ["add", "remove", "replace", "move", "copy", "test"]},
                             "path": {"type": "string"}, "from": {"type": "string"}, "value": {}}}
        content["application/json-patch+json"] = {"schema": {"type": "array", "items": op}}
    return {"requestBody": {"required": True, "content": content}}


def created_links(get: str, namespace: str = "$request.path.namespace") -> dict[int | str, dict[str, Any]]:
    """OpenAPI links from a create's 201 to the operations on what it created (stateful fuzzing)."""
    params = {"namespace": namespace, "name": "$response.body#/metadata/name"}
    return {201: {"description": "Created", "links": {
        op: {"operationId": op, "parameters": params} for op in get.split()}}}


def parse_body(body: bytes, content_type: str) -> Any:
    """The one document of a body: JSON for ``application/json`` (and ``…+json``), YAML
    for ``application/yaml``; bounded as ``katib.spec`` loads (no alias bombs, no
    duplicate keys, no deep nesting). Runs in a worker thread, never on the event loop."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValidationError([FieldError("", f"the body is not UTF-8 (byte {exc.start})")], "request") from None
    if not text.strip():
        raise ValidationError([FieldError("", "the request body is empty")], "request")
    media = content_type.split(";", 1)[0].strip().lower()
    if media == "application/json" or media.endswith("+json"):
        return load_json(text)
    docs = load_documents(text)
    if len(docs) != 1:
        raise ValidationError([FieldError("", f"expected one document (got {len(docs)})")], "request")
    return docs[0]


async def read_document(request: Request) -> Any:
    """The request's one document (see ``parse_body``)."""
    body = await request.body()
    return await asyncio.to_thread(parse_body, body, request.headers.get("content-type", "application/json"))


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


async def delete_options(request: Request) -> dict[str, Any]:
    """The ``DeleteOptions`` a DELETE carries in its body (kubectl and client-go send one:
    ``dryRun``, ``preconditions``, ``propagationPolicy``…); {} without a body."""
    if request.method != "DELETE":
        return {}
    body = await request.body()
    if not body.strip():
        return {}
    options = await asyncio.to_thread(parse_body, body, "application/json")
    if not isinstance(options, dict):
        raise ValidationError([FieldError("body", "a delete's body must be DeleteOptions, a JSON object")], "request")
    return options


def dry_run_asked(options: dict[str, Any]) -> bool:
    """Whether ``DeleteOptions.dryRun`` asks a dry run (``["All"]``; other values are refused)."""
    value = options.get("dryRun")
    if not value:
        return False
    if value != ["All"]:
        raise ValidationError([FieldError("dryRun", f"must be [All] (got {json.dumps(value)[:60]})")], "request")
    return True
