"""Reading request bodies strictly: anything malformed becomes a clear 400."""

from __future__ import annotations

import json
from typing import Any

from flask import request

from fglab.errors import BadRequest, WrongMediaType

#: MongoDB stores whole numbers of up to 64 bits.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def json_body() -> Any:
    """The request's JSON body (any JSON value), or a 400 saying what is wrong.

    A body must say it is JSON (``Content-Type: application/json``), else 415: a page
    elsewhere can post a form or ``text/plain`` without asking the browser's permission,
    but not ``application/json``.
    """
    raw = request.get_data(cache=True)
    if raw.strip() and not request.is_json:
        sent = request.mimetype or "no Content-Type"
        raise WrongMediaType(
            f"Request body is {sent}; send JSON with Content-Type: application/json"
        )
    if not raw.strip():
        raise BadRequest("Request body is empty; send JSON")
    try:
        return parse_json(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BadRequest(f"Request body is not valid JSON: {e}") from None


def parse_json(raw: bytes | str) -> Any:
    """Parse JSON that MongoDB can store, else raise a 400 (BadRequest) saying why.

    Whole numbers must fit in 64 bits, text must be valid Unicode (no lone surrogate
    escapes), field names must hold no NUL. Text that is not JSON at all raises
    ``json.JSONDecodeError`` or ``UnicodeDecodeError``, for the caller to word.
    """
    try:
        value = json.loads(raw, parse_int=_int64)
    except RecursionError:
        raise BadRequest("JSON is nested too deeply") from None
    _check_text(value)
    return value


def _int64(text: str) -> int:
    # Checked on the text first: int() refuses more than 4300 digits with a ValueError.
    value = int(text) if len(text) <= 20 else None
    if value is None or not INT64_MIN <= value <= INT64_MAX:
        shown = text if len(text) <= 40 else f"{text[:20]}...({len(text)} digits)"
        raise BadRequest(f"Number {shown} is out of range; whole numbers must fit in 64 bits")
    return value


def _check_text(value: Any) -> None:
    pending = [value]
    while pending:  # a loop, not recursion: the depth is the client's choice
        item = pending.pop()
        if isinstance(item, dict):
            for key in item:
                if "\0" in key:
                    raise BadRequest(f"Field name {key!r} contains a NUL character; remove it")
            pending.extend(item)
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, str) and not item.isascii():
            try:
                item.encode()
            except UnicodeEncodeError:
                raise BadRequest(
                    f"Text {item[:40]!r} is not valid Unicode (a lone surrogate escape)"
                ) from None


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
