"""What a sweep's trials say: each one's objective, status and reason, the counts, the best.

Pure functions over the trials' experiment documents. A trial's status is its
experiment's, with one exception: a trial that succeeded without the objective score is
a failed trial for the sweep ("finished without the objective score 'loss'"), although
its experiment stays ``success``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from fglab.sweeps.config import Objective
from tasks.states import ACTIVE, Status

__all__ = [
    "best_trial", "export_rows", "objective_value", "score_names", "status_counts",
    "trial_view",
]  # fmt: skip

#: The sweep-side state of a trial, as Optuna is told it.
COMPLETE, PRUNED, FAILED, RUNNING = "complete", "pruned", "fail", "running"


def objective_value(doc: Mapping[str, Any], objective: Objective | None) -> float | None:
    """The trial's objective score, when it reported a finite number under that name."""
    if objective is None:
        return None
    value = (doc.get("_scores") or {}).get(objective.score)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def trial_view(doc: Mapping[str, Any], objective: Objective | None) -> dict[str, Any]:
    """One row of a sweep's trials: ``{trial, experiment, options, objective, status,
    reason}``, the reason the first line of why it ended (or waits)."""
    value = objective_value(doc, objective)
    status = doc["_status"]
    reason = ((doc.get("_exit") or {}).get("reason") or "").split("\n", 1)[0] or None
    if status == Status.QUEUED:
        reason = doc.get("_waiting")
    if status == Status.SUCCESS and objective is not None and value is None:
        status = str(Status.FAIL)
        reason = f"finished without the objective score {objective.score!r}"
    if status in ACTIVE and doc.get("_prune"):
        reason = "being stopped: " + doc["_prune"]["reason"]
    return {
        "trial": doc["_trial"],
        "experiment": doc["_id"],
        "options": doc.get("_options", {}),
        "objective": value,
        "status": status,
        "reason": reason,
    }


def optuna_state(view: Mapping[str, Any]) -> str:
    """How a trial is told to the sampler: complete (with its value), pruned, failed, or
    still running (queued ones too, so the sampler does not propose them again)."""
    status = view["status"]
    if status == Status.SUCCESS and view["objective"] is not None:
        return COMPLETE
    if status == Status.PRUNED:
        return PRUNED
    if status in {Status.QUEUED, *ACTIVE}:
        return RUNNING
    return FAILED


def status_counts(views: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """How many trials are in each status."""
    return dict(Counter(view["status"] for view in views))


def best_trial(
    views: Iterable[Mapping[str, Any]], objective: Objective | None
) -> dict[str, Any] | None:
    """The completed trial with the best objective (the earliest on a tie), or None."""
    best: Mapping[str, Any] | None = None
    for view in views:
        if optuna_state(view) != COMPLETE:
            continue
        if best is None or (
            objective is not None and objective.better(view["objective"], best["objective"])
        ):
            best = view
    if best is None:
        return None
    return {key: best[key] for key in ("trial", "experiment", "options", "objective")}


def sweep_view(sweep: Mapping[str, Any], trials: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """A sweep as the API answers it: its settings and state, the counts of its trials'
    statuses, the best trial, and every trial by number."""
    objective = Objective(**sweep["objective"]) if sweep.get("objective") else None
    rows = [trial_view(doc, objective) for doc in trials]
    return {
        "_id": sweep["_id"],
        "project": sweep["project"],
        "method": sweep["method"],
        "state": sweep["state"],
        "space": sweep["space"],
        "objective": sweep.get("objective"),
        "budget": sweep["budget"],
        "parallelism": sweep["parallelism"],
        "seed": sweep["seed"],
        "priority": sweep.get("priority", 0),
        "prune": sweep.get("prune"),
        "created": sweep["created"],
        "finished": sweep.get("finished"),
        "counts": status_counts(rows),
        "best": best_trial(rows, objective),
        "trials": rows,
    }


def export_rows(
    sweep: Mapping[str, Any], trials: Iterable[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """A sweep's trials as exported rows, by trial number: the experiments table's fields
    (``_id``, ``_status``, ``_options``, ``_scores``, ``_started``, ``_finished``,
    ``_tags``) plus the
    sweep's view of each (``trial``, ``objective``, ``reason``)."""
    objective = Objective(**sweep["objective"]) if sweep.get("objective") else None
    rows = []
    for doc in trials:
        view = trial_view(doc, objective)
        rows.append(
            {
                "trial": view["trial"],
                "_id": doc["_id"],
                "_status": doc["_status"],
                "_options": doc.get("_options", {}),
                "_scores": doc.get("_scores") or {},
                "_started": doc.get("_started"),
                "_finished": doc.get("_finished"),
                "_tags": doc.get("_tags") or [],
                "objective": view["objective"],
                "reason": view["reason"],
            }
        )
    return rows


def score_names(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """Every score name of the rows, in order of first appearance."""
    names: dict[str, None] = {}
    for row in rows:
        scores = row.get("_scores")
        if isinstance(scores, Mapping):
            names.update(dict.fromkeys(scores))
    return list(names)
