"""Decides where experiments run.

``submit`` places a new experiment on a machine with room, or keeps it ``queued``, or
(the original's single-submit behaviour) refuses with 501 and keeps nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from bson import ObjectId

from fglab.errors import NoCapacity
from fglab.store import Store
from tasks.states import Status

logger = logging.getLogger(__name__)


class Scheduler:
    """Places experiments; without machines every experiment waits or is refused."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def submit(
        self, project: Mapping[str, Any], options: Mapping[str, Any], *, queue: bool
    ) -> ObjectId:
        """Start an experiment now, or keep it queued (`queue`), or raise NoCapacity."""
        experiment_id = ObjectId()
        if self._place(project, experiment_id, options):
            return experiment_id
        if not queue:
            raise NoCapacity("No machine capacity available")
        return self.store.new_experiment(
            project["_id"], options, status=Status.QUEUED, experiment_id=experiment_id
        )

    def _place(
        self, project: Mapping[str, Any], experiment_id: ObjectId, options: Mapping[str, Any]
    ) -> bool:
        return False
