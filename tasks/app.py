"""The Celery configuration both sides share (broker, serialisation, acks, routes)."""

from __future__ import annotations

from celery import Celery

from config import Settings
from tasks.contract import (
    DELIVER_WEBHOOK,
    DISPATCH,
    EXPERIMENT_EVENT,
    SERVER_QUEUE,
    SWEEP,
    WEBHOOK_QUEUE,
)


def create_celery(settings: Settings, main: str) -> Celery:
    """A Celery app on FGLab's Redis.

    Tasks are acknowledged on receipt, not late: an experiment can outlive the broker's
    visibility timeout (celery/celery#5935), and a redelivered message must not start it
    again. What may launch is decided by the ledger and the experiment's state in MongoDB.
    """
    app = Celery(main, broker=settings.redis, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_ignore_result=True,
        result_backend=None,
        task_acks_late=False,
        worker_prefetch_multiplier=1,
        # Task events (a PUBLISH per task and state) are for monitoring: Flower turns
        # them on in every worker when it starts (its --enable_events, the default), so
        # a fleet nobody watches does not pay for them. FGLAB_TASK_EVENTS=1 keeps them on.
        worker_send_task_events=settings.task_events,
        task_send_sent_event=settings.task_events,
        broker_connection_retry_on_startup=True,
        broker_transport_options={"visibility_timeout": settings.visibility_timeout},
        task_default_queue=SERVER_QUEUE,
        task_routes={
            **{name: {"queue": SERVER_QUEUE} for name in (DISPATCH, SWEEP, EXPERIMENT_EVENT)},
            DELIVER_WEBHOOK: {"queue": WEBHOOK_QUEUE},
        },
        worker_hijack_root_logger=False,
        timezone="UTC",
    )
    return app
