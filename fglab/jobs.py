"""FGLab's own Celery app: the scheduler, maintenance and webhooks (queue ``fglab``).

celery -A fglab.jobs worker -Q fglab     # scheduler: reacts to machines' events
celery -A fglab.jobs beat                # periodic sweep
"""

from __future__ import annotations

import logging
from typing import Any

from bson import ObjectId
from celery import Celery

from config import Settings, load_settings
from fglab.maintenance import sweep
from fglab.scheduler import Scheduler, connect_scheduler
from fglab.webhooks import DeliveryFailed, deliver, hooks_for
from tasks.app import create_celery
from tasks.contract import DELIVER_WEBHOOK, DISPATCH, EXPERIMENT_EVENT, SWEEP

logger = logging.getLogger(__name__)


def create_jobs_app(settings: Settings) -> Celery:
    app = create_celery(settings, "fglab")
    app.conf.beat_schedule = {
        "sweep": {"task": SWEEP, "schedule": max(1.0, settings.heartbeat)},
    }
    holder: dict[str, Scheduler] = {}

    def scheduler() -> Scheduler:
        if "scheduler" not in holder:
            holder["scheduler"] = connect_scheduler(settings, app)
        return holder["scheduler"]

    @app.task(name=DISPATCH)
    def dispatch() -> int:
        """Dispatch queued experiments now (room freed, a machine appeared)."""
        return scheduler().dispatch_queued()

    @app.task(name=EXPERIMENT_EVENT)
    def experiment_event(experiment_id: str, event: str) -> int:
        """An experiment started or finished: fire its webhooks; dispatch what waits."""
        for hook_id in hooks_for(scheduler().store, experiment_id, event):
            app.send_task(DELIVER_WEBHOOK, args=[str(hook_id)])
        if event == "finished":
            return scheduler().dispatch_queued()
        return 0

    @app.task(
        name=DELIVER_WEBHOOK,
        autoretry_for=(DeliveryFailed,),
        retry_backoff=2,
        retry_backoff_max=600,
        retry_jitter=True,
        max_retries=10,
    )
    def deliver_webhook(hook_id: str) -> int:
        """POST one webhook; retried with backoff, at least once delivered."""
        return deliver(scheduler().store, ObjectId(hook_id))

    @app.task(name=SWEEP)
    def periodic_sweep() -> dict[str, Any]:
        """Requeue lost messages, mark dead machines' experiments lost, dispatch."""
        report = sweep(scheduler(), settings.lease_ttl)
        report["dispatched"] = scheduler().dispatch_queued()
        return report

    return app


app = create_jobs_app(load_settings())
