"""Periodic repairs: reservations that vanished, machines that went silent.

Runs under Celery beat (``fglab.sweep``); each repair is a compare-and-set, so running
it twice, or beside a worker that is finishing, changes nothing twice.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from fglab.scheduler import Scheduler
from tasks import machines
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
