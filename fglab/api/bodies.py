"""Reading request bodies strictly: anything malformed becomes a clear 400."""

from __future__ import annotations

import json
from typing import Any

from flask import request

from fglab.errors import BadRequest


def json_body() -> Any:
    """The request's JSON body (any JSON value), or a 400 saying what is wrong."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        raise BadRequest("Request body is empty; send JSON")
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BadRequest(f"Request body is not valid JSON: {e}") from None


def json_object() -> dict[str, Any]:
    body = json_body()
    if not isinstance(body, dict):
        raise BadRequest("Request body must be a JSON object")
    return body


def doc_body(description: str, example: Any, content: str = "application/json") -> dict:
    """OpenAPI ``requestBody`` for a route that parses its body itself."""
    return {
        "requestBody": {
            "required": True,
            "description": description,
            "content": {content: {"schema": {}, "example": example}},
        }
    }


def doc_multipart(field: str, description: str, many: bool = False) -> dict:
    schema: dict[str, Any] = {"type": "string", "format": "binary"}
    if many:
        schema = {"type": "array", "items": schema}
    return {
        "requestBody": {
            "required": True,
            "description": description,
            "content": {
                "multipart/form-data": {
                    "schema": {"type": "object", "properties": {field: schema}, "required": [field]}
                }
            },
        }
    }
