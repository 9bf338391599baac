"""Numeric query parameters, read one way with one message style.

``limit is '0'; use a whole number from 1 to 10000``: the parameter, the value as sent,
and what to send instead.
"""

from __future__ import annotations

import math

from flask import request

from fglab.errors import BadRequest
from fglab.tags import TagError, parse_tags

#: The largest ``offset`` of a page: a billion, past any real list, and a skip every
#: MongoDB (and its test servers) takes.
MAX_OFFSET = 10**9


def int_arg(name: str, default: int, low: int, high: int) -> int:
    """Query parameter `name` as a whole number in [low, high], `default` when absent."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        raise BadRequest(f"{name} is {raw!r}; use a whole number from {low} to {high}")
    return value


def seconds_arg(name: str) -> float | None:
    """Query parameter `name` as a finite number of seconds above 0; None when absent."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (value > 0 and math.isfinite(value)):
        raise BadRequest(f"{name} is {raw!r}; use a number of seconds above 0")
    return value


#: The range of an experiment's priority (a point is worth a day of waiting).
MAX_PRIORITY = 1000


def priority_arg() -> int:
    """``?priority=<n>``: the submission's priority, 0 when absent."""
    return int_arg("priority", 0, -MAX_PRIORITY, MAX_PRIORITY)


#: The ``?tag=`` parameter, as the submission routes document it.
TAG_PARAMETER = {
    "in": "query",
    "name": "tag",
    "schema": {"type": "array", "items": {"type": "string"}},
    "explode": True,
    "description": "Tags for the experiments (repeat the parameter, or comma-separate): "
    "1 to 40 letters, digits or `_ . : / + -`; at most 20",
}


def tags_arg() -> list[str]:
    """``?tag=<t>`` (repeated or comma-separated): the submission's tags, none when absent."""
    try:
        return parse_tags(request.args.getlist("tag"))
    except TagError as e:
        raise BadRequest(str(e)) from None
