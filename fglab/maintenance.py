"""Periodic repairs: reservations that vanished, machines that went silent.

Runs under Celery beat (``fglab.sweep``); each repair is a compare-and-set, so running
it twice, or beside a worker that is finishing, changes nothing twice.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import timedelta
from typing import Any

from fglab.scheduler import Scheduler
from fglab.store import now
from tasks.states import Status

logger = logging.getLogger(__name__)


def sweep(scheduler: Scheduler, lease_ttl: float) -> dict[str, int]:
    """Requeue dispatched experiments that no worker took; mark lost those of dead machines.

    - ``dispatched`` for longer than a lease lives and its lease gone: the message was
      lost (a worker died holding it, Redis was emptied): back to ``queued``. A late copy
      of the message launches nothing, since its token no longer matches.
    - ``claimed``/``running`` on a machine that stopped beating: ``lost``, with the reason.
      A live machine whose leases vanished (Redis emptied) takes them again itself.
    """
    store, ledger = scheduler.store, scheduler.ledger
    if ledger is None:
        return {"requeued": 0, "lost": 0}
    cutoff = now() - timedelta(seconds=lease_ttl)
    active = store.experiments.find(
        {"_status": {"$in": [str(Status.DISPATCHED), str(Status.CLAIMED), str(Status.RUNNING)]}},
        {"_status": 1, "_machine_id": 1, "_dispatched": 1},
    )
    by_machine: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for doc in active:
        by_machine[doc.get("_machine_id") or ""].append(doc)

    requeued = lost = 0
    for machine_id, docs in by_machine.items():
        owners = ledger.owners(machine_id) if machine_id else set()
        machine = store.machines.find_one({"_id": machine_id}, {"_heartbeat": 1}) or {}
        heartbeat = machine.get("_heartbeat")
        machine_dead = heartbeat is None or _aware(heartbeat) < cutoff
        for doc in docs:
            if str(doc["_id"]) in owners:
                continue
            dispatched = doc.get("_dispatched")
            if doc["_status"] == Status.DISPATCHED:
                if dispatched is None or _aware(dispatched) < cutoff:
                    requeued += scheduler.requeue_unclaimed([doc["_id"]])
            elif machine_dead:
                reason = f"machine {machine_id} stopped beating (worker or host down)"
                moved = store.move(
                    doc["_id"],
                    {Status.CLAIMED, Status.RUNNING},
                    {
                        "_status": str(Status.LOST),
                        "_finished": now(),
                        "_exit": {"code": None, "signal": None, "reason": reason},
                    },
                )
                if moved is not None:
                    lost += 1
                    logger.warning("experiment %s: lost (%s)", doc["_id"], reason)
    return {"requeued": requeued, "lost": lost}


def _aware(moment: Any) -> Any:
    from datetime import UTC

    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
