"""Pure shaping of API answers: table rows as flat records, a sweep's objective from text."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: Top-level row fields and the record keys they become.
ROW_KEYS = {
    "_id": "_id",
    "_status": "status",
    "_created": "created",
    "_started": "started",
    "_finished": "finished",
    "_machine_id": "machine",
    "_notes": "notes",
    "_tags": "tags",
}
GOALS = {"min": "minimize", "minimize": "minimize", "max": "maximize", "maximize": "maximize"}


def to_record(row: Mapping[str, Any]) -> dict[str, Any]:
    """One table row as a flat dict: ``_id``, ``status``, ``options.<name>``,
    ``scores.<name>`` (nested scores as ``scores.<a>.<b>``), then the times (ISO 8601
    text, as the API sends them), ``machine``, ``notes`` and ``tags``."""
    record: dict[str, Any] = {"_id": row.get("_id"), "status": row.get("_status")}
    _flatten(record, "options", row.get("_options"))
    _flatten(record, "scores", row.get("_scores"))
    for field, key in ROW_KEYS.items():
        if key not in record:
            record[key] = row.get(field)
    return record


def _flatten(record: dict[str, Any], prefix: str, value: Any) -> None:
    if not isinstance(value, Mapping):
        return
    for name, item in value.items():
        key = f"{prefix}.{name}"
        if isinstance(item, Mapping) and item:
            _flatten(record, key, item)
        else:
            record[key] = item


def parse_objective(objective: str | Mapping[str, Any]) -> dict[str, Any]:
    """A sweep's ``{"score", "goal"}`` from ``"loss:min"`` (or ``:max``, ``:minimize``,
    ``:maximize``; the goal defaults to minimize); a mapping passes as it is.

    Raises ValueError naming the text when it has no score or an unknown goal.
    """
    if isinstance(objective, Mapping):
        return dict(objective)
    score, _, goal = objective.partition(":")
    goal = goal.strip().lower() or "min"
    if not score.strip() or goal not in GOALS:
        raise ValueError(
            f"objective {objective!r} is not usable; write <score>:min or <score>:max, "
            "e.g. loss:min"
        )
    return {"score": score.strip(), "goal": GOALS[goal]}
