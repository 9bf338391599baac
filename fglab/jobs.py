"""FGLab's own Celery app: the scheduler and maintenance (queue ``fglab``), webhook
deliveries (queue ``fglab-webhooks``).

celery -A fglab.jobs worker -Q fglab            # scheduler: reacts to machines' events
celery -A fglab.jobs worker -Q fglab-webhooks   # webhook deliveries
celery -A fglab.jobs beat                       # periodic sweep
"""

from __future__ import annotations

import logging
import time
from typing import Any

from bson import ObjectId
from celery import Celery, Task
from celery.signals import beat_embedded_init, worker_ready, worker_shutdown

from config import Settings, load_settings
from fglab.broker import Broker
from fglab.maintenance import quiet_sweep_lines, sweep
from fglab.nudges import start_listening
from fglab.scheduler import Scheduler, connect_scheduler
from fglab.sweeps.driver import SweepDriver
from fglab.sweeps.ended import EndedTrials
from fglab.webhooks import (
    MAX_RETRIES,
    DeliveryFailed,
    deliver,
    give_up,
    hooks_for,
    retry_delay,
)
from tasks.app import create_celery
from tasks.contract import (
    DELIVER_WEBHOOK,
    DISPATCH,
    EXPERIMENT_EVENT,
    FINISHED,
    PROGRESS,
    SERVER_QUEUE,
    SWEEP,
    ExperimentEvent,
    dispatch_channel,
)
from tasks.lifetime import die_with_parent

logger = logging.getLogger(__name__)

#: Seconds between recounts of every project's experiments by the periodic sweep (one
#: aggregation over all experiments; the counters are kept by every move meanwhile).
COUNTS_REPAIR_EVERY = 60.0


@beat_embedded_init.connect
def _embedded_beat_dies_with_its_worker(**_: Any) -> None:
    """`worker -B` forks its beat: without this, a worker killed by SIGKILL leaves the beat
    running on its own, sending sweeps for a scheduler that is gone (and, once one is
    started again, twice as many). A beat started on its own (`celery beat`) is left
    alone."""
    die_with_parent()


def create_jobs_app(settings: Settings) -> Celery:
    app = create_celery(settings, "fglab")
    quiet_sweep_lines()
    app.conf.beat_schedule = {
        "sweep": {"task": SWEEP, "schedule": max(1.0, settings.heartbeat)},
    }
    broker = Broker(app)
    holder: dict[str, Scheduler] = {}

    def scheduler() -> Scheduler:
        if "scheduler" not in holder:
            holder["scheduler"] = connect_scheduler(settings, broker)
        return holder["scheduler"]

    ended_trials = EndedTrials()  # read once, judged against many times

    def sweeps() -> SweepDriver:
        return SweepDriver(scheduler(), ended_trials)

    listening: dict[str, Any] = {}
    repaired = {"next": 0.0}  # when the periodic sweep next recounts every project

    @worker_ready.connect(weak=False)
    def _listen(sender: Any = None, **_: Any) -> None:
        if getattr(sender, "app", None) is not app:
            return  # another app's worker in this process (tests)
        if SERVER_QUEUE not in (sender.app.amqp.queues.consume_from or {}):
            return  # a webhooks-only worker does not dispatch
        redis = scheduler().redis
        if redis is not None:
            channel = dispatch_channel(settings.mongodb_db)
            listening["stop"] = start_listening(redis, channel, scheduler().dispatch_queued)

    @worker_shutdown.connect(weak=False)
    def _stop_listening(sender: Any = None, **_: Any) -> None:
        if "stop" in listening:
            listening.pop("stop").set()

    @app.task(name=DISPATCH, send_events=False)
    def dispatch() -> int:
        """Dispatch queued experiments now (room freed, a machine appeared)."""
        return scheduler().dispatch_queued()

    # Internal tasks send no monitoring events: Flower follows the experiments' runs.
    @app.task(name=EXPERIMENT_EVENT, send_events=False)
    def experiment_event(**payload: Any) -> int:
        """An experiment started, finished, or (a sweep's trial) reported a new step
        (`ExperimentEvent`): fire its webhooks; judge a trial's progress; when one
        ended, make its sweep's next trial and dispatch what waits."""
        event = ExperimentEvent.from_dict(payload)
        experiment_id = ObjectId(event.experiment_id)
        if event.event == PROGRESS:
            sweeps().judge(experiment_id, event.step)
            return 0
        if event.hooks:
            for hook_id in hooks_for(scheduler().store, event.experiment_id, event.event):
                broker.deliver_webhook(str(hook_id))
        if event.event == FINISHED:
            if event.trial:
                sweeps().trial_ended(experiment_id)
            return scheduler().dispatch_queued()
        return 0

    # Retries are declared here, not with Celery's retry_backoff: that one counts in
    # whole seconds and FGLAB_WEBHOOK_BACKOFF may be a fraction of one. Acks are late
    # (unlike the machines' tasks): a delivery cut short by a crash is made again, so a
    # hook is delivered at least once.
    @app.task(
        name=DELIVER_WEBHOOK,
        bind=True,
        max_retries=MAX_RETRIES,
        acks_late=True,
    )
    def deliver_webhook(self: Task, hook_id: str) -> int:
        """POST one webhook; retried with doubling delays (first FGLAB_WEBHOOK_BACKOFF s).

        After `MAX_RETRIES` retries (none after a redirect or a refused address) the hook
        is marked ``gave_up``; nothing is deleted.
        """
        retries = self.request.retries
        try:
            return deliver(
                scheduler().store,
                ObjectId(hook_id),
                attempt=retries + 1,
                timeout=settings.webhook_timeout,
                allow_private=settings.webhook_allow_private,
            )
        except DeliveryFailed as e:
            if e.final or retries >= self.max_retries:
                give_up(scheduler().store, ObjectId(hook_id), attempts=retries + 1)
                raise
            countdown = retry_delay(settings.webhook_backoff, retries)
            raise self.retry(exc=e, countdown=countdown) from e

    @app.task(name=SWEEP)
    def periodic_sweep() -> dict[str, Any]:
        """Requeue lost messages, mark dead machines' experiments lost, advance the
        hyperparameter sweeps, dispatch."""
        report = sweep(scheduler())
        if time.monotonic() >= repaired["next"]:  # the first sweep too: counters to start
            repaired["next"] = time.monotonic() + COUNTS_REPAIR_EVERY
            fixed = scheduler().store.repair_counts()
            if fixed:
                logger.warning("status counts of %d project(s) were off; set right", len(fixed))
            report["counts_repaired"] = len(fixed)
        report["trials"] = sweeps().advance_all()
        report["dispatched"] = scheduler().dispatch_queued()
        return report

    return app


app = create_jobs_app(load_settings())
