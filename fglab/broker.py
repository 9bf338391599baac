"""FGLab's one way to the broker: every task the server sends goes through here.

The broker being unreachable is one warning line and an `Unavailable` (a 503 at the API's
edge); callers that can wait (the scheduler) catch it and try again later.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from typing import Any

from celery import Celery
from kombu.exceptions import OperationalError
from redis.exceptions import RedisError

from fglab.errors import Unavailable
from tasks.contract import (
    ADD_PROJECT,
    DELIVER_WEBHOOK,
    DISPATCH,
    RUN_EXPERIMENT,
    SERVER_QUEUE,
    WEBHOOK_QUEUE,
    RunRequest,
    machine_queue,
)

logger = logging.getLogger(__name__)


class Broker:
    """Sends FGLab's tasks: run requests to machines, dispatch asks, webhook deliveries."""

    def __init__(self, celery: Celery) -> None:
        self._celery = celery

    def run_experiment(self, request: RunRequest) -> None:
        """Send one run request to its machine's queue."""
        self._send(RUN_EXPERIMENT, machine_queue(request.machine), kwargs=request.to_dict())

    def ask_dispatch(self) -> None:
        """Ask the scheduler to place queued experiments (room freed, a machine came back).

        Never raises: if the broker is unreachable (said once in the log), beat's sweep
        dispatches within a heartbeat anyway.
        """
        with contextlib.suppress(Unavailable):
            self._send(DISPATCH, SERVER_QUEUE)

    def deliver_webhook(self, hook_id: str) -> None:
        self._send(DELIVER_WEBHOOK, WEBHOOK_QUEUE, args=[hook_id])

    def add_project(
        self, machine: str, project_id: str, entry: Mapping[str, Any] | None = None
    ) -> None:
        """Ask a machine's worker to add a projects.json entry (FGLab's template if None)."""
        args: list[Any] = [project_id] if entry is None else [project_id, dict(entry)]
        self._send(ADD_PROJECT, machine_queue(machine), args=args)

    def close(self) -> None:
        """Close the broker connections (tests that restart Redis)."""
        self._celery.close()

    def _send(
        self,
        name: str,
        queue: str,
        *,
        args: list[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
    ) -> None:
        try:
            self._celery.send_task(name, args=args, kwargs=kwargs, queue=queue)
        except (OperationalError, RedisError, OSError) as e:
            logger.warning("broker unreachable: %s to %s not sent: %s", name, queue, e)
            raise Unavailable("The broker (Redis) is unreachable; try again shortly") from e
