"""Request bodies: an experiment as JSON or YAML, and JSON merge patches."""

from __future__ import annotations

import copy
import json
from typing import Any

from fastapi import Request

from katib.errors import FieldError, ValidationError
from katib.spec import load_documents


async def read_document(request: Request) -> Any:
    """The one document in the body, JSON or YAML whatever the content type says."""
    body = (await request.body()).decode("utf-8", errors="replace")
    if not body.strip():
        raise ValidationError([FieldError("", "the request body is empty")], "request")
    try:
        return json.loads(body)
    except json.JSONDecodeError:
        pass
    docs = load_documents(body)
    if len(docs) != 1:
        raise ValidationError([FieldError("", f"expected one document (got {len(docs)})")], "request")
    return docs[0]


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
