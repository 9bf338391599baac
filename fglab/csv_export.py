"""Experiments table rows as CSV lines (or a JSON array), one at a time: pure, no I/O.

Columns: ``_id``, ``status``, one per option (schema order), one per score (a score
named like an option is headed ``_scores.<name>``), ``duration`` (seconds from
``_started`` to ``_finished``; empty until it ended), ``tags`` (comma-separated).
Values are spelled as JSON except strings, which stay bare. A text cell that a
spreadsheet would run as a formula (it starts with ``=``, ``+``, ``-``, ``@``, a tab or
a carriage return and is not a number) gets a leading ``'`` (OWASP's advice against CSV
injection).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from fglab.jsonify import to_json_value

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def headers(
    option_names: Sequence[str],
    score_names: Sequence[str],
    lead: Sequence[str] = (),
    tail: Sequence[str] = (),
) -> list[str]:
    options = set(option_names)
    scores = [f"_scores.{name}" if name in options else name for name in score_names]
    return [*lead, "_id", "status", *option_names, *scores, "duration", "tags", *tail]


def csv_lines(
    rows: Iterable[Mapping[str, Any]],
    option_names: Sequence[str],
    score_names: Sequence[str],
    *,
    lead: Sequence[str] = (),
    tail: Sequence[str] = (),
) -> Iterator[str]:
    """The header line, then one line per row (each ends with CRLF). `lead` and `tail`
    name more top-level fields of the rows, as columns before and after the usual ones
    (a sweep's ``trial`` and ``reason``)."""
    yield _line(headers(option_names, score_names, lead, tail))
    for row in rows:
        options = _mapping(row.get("_options"))
        scores = _mapping(row.get("_scores"))
        cells = [
            *(cell(row.get(name)) for name in lead),
            str(row.get("_id", "")),
            str(row.get("_status", "")),
            *(cell(options.get(name)) for name in option_names),
            *(cell(scores.get(name)) for name in score_names),
            duration(row.get("_started"), row.get("_finished")),
            _tags(row.get("_tags")),
            *(cell(row.get(name)) for name in tail),
        ]
        yield _line(cells)


def json_array(rows: Iterable[Mapping[str, Any]]) -> Iterator[str]:
    """Rows as one JSON array, a row per chunk (IDs and times spelled as the API does)."""
    yield "["
    for index, row in enumerate(rows):
        text = json.dumps(row, default=to_json_value, ensure_ascii=False)
        yield ("," if index else "") + "\n" + text
    yield "\n]\n"


def cell(value: object) -> str:
    """A value as one CSV cell: strings bare (formula-safe), the rest as JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return _safe(value)
    return json.dumps(value, default=to_json_value, ensure_ascii=False)


def duration(started: object, finished: object) -> str:
    """Seconds between two stored times, to the millisecond; empty unless both are times."""
    if not isinstance(started, datetime) or not isinstance(finished, datetime):
        return ""
    seconds = (_utc(finished) - _utc(started)).total_seconds()
    return f"{seconds:.3f}"


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _safe(text: str) -> str:
    if text.startswith(_FORMULA_START):
        try:
            float(text)
        except ValueError:
            return "'" + text
    return text


def _tags(value: object) -> str:
    return ",".join(str(tag) for tag in value) if isinstance(value, list) else ""


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _line(cells: Sequence[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerow(cells)
    return buffer.getvalue()
