"""The machine's Celery app: ``celery -A worker worker -Q machine-<host>``.

The pool is threads: a pool slot only waits on a program and watches its folder, and
the ledger, not the pool size, decides what starts (the pool must be at least as large
as the most experiments this machine's projects allow at once).

Stopping the worker (TERM, even KILL) does not stop its runs: each program runs under a
supervisor of its own, and the next worker of the machine re-adopts them. With
``FGLAB_KEEP_RUNS_ON_STOP=false`` a warm shutdown instead waits until every run ends.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery
from celery.signals import worker_ready, worker_shutdown, worker_shutting_down
from kombu import Queue

from config import Settings, load_settings
from tasks.app import create_celery
from tasks.contract import (
    ADD_PROJECT,
    DISPATCH,
    EXPERIMENT_EVENT,
    RUN_EXPERIMENT,
    SERVER_QUEUE,
    ExperimentEvent,
    RunRequest,
    machine_queue,
)
from worker.machine import Machine
from worker.projects import ProjectsError
from worker.runner import resume_left_runs, run_experiment

logger = logging.getLogger(__name__)


def create_worker_app(settings: Settings) -> Celery:
    app = create_celery(settings, "worker")
    queue = machine_queue(settings.machine_name)
    app.conf.update(
        task_queues=(Queue(queue),),
        task_default_queue=queue,
        worker_pool="threads",
        worker_concurrency=settings.worker_concurrency,
        # What a machine sends (started/finished events, dispatch asks) is internal
        # chatter; Flower follows the runs through the events of fglab.run_experiment.
        task_send_sent_event=False,
        # Run messages are acknowledged on receipt (see tasks.app), so the transport's
        # emulated acks (a hash and a sorted set written and cleared per message) buy
        # nothing: a message lost with a dying worker leaves its experiment dispatched,
        # and the sweep requeues it once its lease has expired.
        broker_transport_options={
            **app.conf.broker_transport_options,
            "ack_emulation": False,
        },
    )
    machine_holder: dict[str, Machine] = {}

    def notify(event: ExperimentEvent | None) -> None:
        try:
            if event is None:
                app.send_task(DISPATCH, queue=SERVER_QUEUE)
            else:
                app.send_task(EXPERIMENT_EVENT, kwargs=event.to_dict(), queue=SERVER_QUEUE)
        except Exception as e:  # the broker blinks: the periodic sweep catches up
            logger.warning("could not tell FGLab about %s: %s", event or "room", e)

    def machine() -> Machine:
        if "machine" not in machine_holder:
            machine_holder["machine"] = Machine(settings, notify=notify)
        return machine_holder["machine"]

    @app.task(name=RUN_EXPERIMENT)
    def run(**payload: Any) -> dict[str, Any]:
        """Run one experiment sent by FGLab's scheduler."""
        return run_experiment(machine(), RunRequest.from_dict(payload))

    @app.task(name=ADD_PROJECT)
    def add_project(project_id: str, entry: dict[str, Any] | None = None) -> dict[str, Any]:
        """Add `entry` (FGLab's template when None) for `project_id` to projects.json."""
        m = machine()
        try:
            m.projects.add(project_id, entry)
        except ProjectsError as e:  # the file is broken: it stays as it is, and says so
            logger.warning("machine %s: project %s not added: %s", m.name, project_id, e)
            return {"machine": m.name, "project": project_id, "error": str(e)}
        m.beat()
        return {"machine": m.name, "project": project_id, "error": m.projects.error}

    @worker_ready.connect(weak=False)
    def _ready(sender: Any = None, **_: Any) -> None:
        m = machine()
        try:
            m.forkserver.start()
        except OSError as e:  # runs start the slow way; the first one tries again
            logger.warning("machine %s: fork server not started: %s", m.name, e)
        m.register()
        resume_left_runs(m)
        m.start_heartbeat()

    @worker_shutting_down.connect(weak=False)
    def _stopping(sender: Any = None, **_: Any) -> None:
        # Runs a signal handler: only set a flag. Each run's thread then returns and
        # leaves its program to its supervisor, so the warm shutdown ends at once.
        if settings.keep_runs_on_stop and "machine" in machine_holder:
            machine_holder["machine"].leave_runs()

    @worker_shutdown.connect(weak=False)
    def _shutdown(sender: Any = None, **_: Any) -> None:
        if "machine" in machine_holder:
            m = machine_holder["machine"]
            if not settings.keep_runs_on_stop:
                m.wait_for_adopted()  # a warm shutdown waits for every run
            m.stop_heartbeat()
            m.forkserver.close()

    return app


app = create_worker_app(load_settings())
