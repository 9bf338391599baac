"""The ended trials of the sweeps being judged, kept in the scheduler's memory.

A judgement needs every trial of the sweep with its history; an ended trial never
changes again (its status is terminal, its last results landed before it ended), so
once read it is kept here and a judgement reads from MongoDB only the trials still
going: at most the sweep's parallelism, whatever its budget. A scheduler that restarts
starts empty and reads each ended trial once more.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from bson import ObjectId

from tasks.states import TERMINAL

#: Sweeps kept at most; the one judged longest ago goes first.
MAX_SWEEPS = 64


class EndedTrials:
    """Sweep -> its ended trials' documents and histories (thread-safe: the scheduler
    judges in a pool of threads)."""

    def __init__(self, max_sweeps: int = MAX_SWEEPS) -> None:
        self._max_sweeps = max_sweeps
        self._sweeps: OrderedDict[ObjectId, dict[ObjectId, tuple[dict[str, Any], list]]] = (
            OrderedDict()
        )
        self._lock = threading.Lock()

    def known(self, sweep_id: ObjectId) -> dict[ObjectId, tuple[dict[str, Any], list]]:
        """The sweep's ended trials read so far: experiment ID -> (document, history)."""
        with self._lock:
            trials = self._sweeps.get(sweep_id)
            if trials is None:
                return {}
            self._sweeps.move_to_end(sweep_id)
            return dict(trials)

    def keep(self, sweep_id: ObjectId, doc: dict[str, Any], points: list) -> None:
        """Keep `doc` (with its history `points`) when its status is terminal."""
        if doc.get("_status") not in TERMINAL:
            return
        with self._lock:
            self._sweeps.setdefault(sweep_id, {})[doc["_id"]] = (doc, points)
            self._sweeps.move_to_end(sweep_id)
            while len(self._sweeps) > self._max_sweeps:
                self._sweeps.popitem(last=False)

    def forget(self, sweep_id: ObjectId) -> None:
        with self._lock:
            self._sweeps.pop(sweep_id, None)
