"""Periodic repairs: reservations that vanished, machines that went silent.

Runs under Celery beat (``fglab.sweep``); each repair is a compare-and-set, so running
it twice, or beside a worker that is finishing, changes nothing twice. Celery's own lines
about each run are DEBUG lines (`SweepAtDebug`); what a sweep repairs is a WARNING.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from fglab.scheduler import Scheduler
from tasks import machines
from tasks.contract import SWEEP
from tasks.states import Status

logger = logging.getLogger(__name__)


def sweep(scheduler: Scheduler) -> dict[str, int]:
    """Requeue dispatched experiments that no worker took; mark lost those of dead machines.

    - ``dispatched`` for longer than the liveness window and its lease gone: the message
      was lost (a worker died holding it, Redis was emptied): back to ``queued``. A late
      copy of the message launches nothing, since its token no longer matches.
    - ``claimed``/``running`` on a machine that is not live (`tasks.machines.is_live`):
      ``lost``, with the reason. A live machine whose leases vanished (Redis emptied)
      takes them again itself.
    """
    store, ledger, settings = scheduler.store, scheduler.ledger, scheduler.settings
    if ledger is None:
        return {"requeued": 0, "lost": 0}
    cutoff = machines.live_since(settings)
    by_machine: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for doc in store.active_experiments():
        by_machine[doc.get("_machine_id") or ""].append(doc)

    requeued = lost = 0
    for machine_id, docs in by_machine.items():
        owners = ledger.owners(machine_id) if machine_id else set()
        machine = (store.find_machine(machine_id) if machine_id else None) or {}
        machine_dead = not machines.is_live(machine, settings)
        for doc in docs:
            if str(doc["_id"]) in owners:
                continue
            if doc["_status"] == Status.DISPATCHED:
                dispatched = doc.get("_dispatched")
                if dispatched is None or _aware(dispatched) < cutoff:
                    requeued += scheduler.requeue_unclaimed([doc["_id"]])
            elif machine_dead:
                reason = f"machine {machine_id} stopped beating (worker or host down)"
                if store.lose(doc["_id"], reason) is not None:
                    lost += 1
                    logger.warning("experiment %s: lost (%s)", doc["_id"], reason)
    return {"requeued": requeued, "lost": lost}


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


#: Celery's loggers that write a line each time a task is sent, received or done.
TASK_LINE_LOGGERS = ("celery.beat", "celery.worker.strategy", "celery.app.trace")


class SweepAtDebug(logging.Filter):
    """Celery's lines about the periodic sweep become DEBUG lines.

    The sweep runs every few seconds; at INFO its "Sending due task", "received" and
    "succeeded" lines would bury everything else in the scheduler's log. Its own
    findings (an experiment lost) still log at WARNING from `fglab.maintenance`.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        about_sweep = (
            args.get("name") == SWEEP if isinstance(args, Mapping) else SWEEP in (args or ())
        )
        if not about_sweep:
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


def quiet_sweep_lines() -> None:
    """Put `SweepAtDebug` on Celery's task-line loggers (once, however often called)."""
    for name in TASK_LINE_LOGGERS:
        log = logging.getLogger(name)
        if not any(isinstance(f, SweepAtDebug) for f in log.filters):
            log.addFilter(SweepAtDebug())
