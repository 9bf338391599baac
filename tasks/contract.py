"""Task names, queue names and the payloads that travel between FGLab and machines.

Names are explicit strings so that moving a module never renames a task on the wire.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

#: Run one experiment on a machine (consumed from ``machine-<host>``).
RUN_EXPERIMENT = "fglab.run_experiment"
#: Ask the scheduler to dispatch queued experiments now (room freed, machine appeared).
DISPATCH = "fglab.dispatch"
#: Periodic maintenance: expired leases, silent machines, lost experiments.
SWEEP = "fglab.sweep"
#: An experiment started or finished on a machine: fire webhooks, dispatch what waits.
EXPERIMENT_EVENT = "fglab.experiment_event"
#: POST one webhook, with retries.
DELIVER_WEBHOOK = "fglab.deliver_webhook"

#: Write a template entry for a project into a machine's projects.json ("Add to machine").
ADD_PROJECT = "fglab.add_project"

#: The projects.json entry "Add to machine" writes (FGMachine's template, with working
#: values); FGLab's project page shows the same entry to copy by hand.
PROJECT_TEMPLATE: dict[str, Any] = {
    "cwd": ".",
    "command": "python",
    "args": [],
    "options": "double-dash",
    "boolean": "mandatory",
    "capacity": 1,
    "results": "results",
}

#: The server-side queue (scheduler, maintenance).
SERVER_QUEUE = "fglab"
#: Webhook deliveries, consumed by a worker of their own: an endpoint that answers
#: slowly holds that worker's threads, never the scheduler's.
WEBHOOK_QUEUE = "fglab-webhooks"


def kill_channel(host: str) -> str:
    """The Redis pub/sub channel on which FGLab asks a machine to stop an experiment.

    A hint for speed: the request itself is the experiment's ``_kill_requested`` in
    MongoDB, which the machine's heartbeat also reads, so a message missed costs a beat.
    """
    return f"fglab:kill:{host}"


def dispatch_channel(database: str) -> str:
    """The Redis pub/sub channel on which a machine says it has room again (a run ended
    that no webhook or sweep waits on), so the scheduler dispatches what waits.

    Named after the fleet's MongoDB database: pub/sub spans a Redis server's databases,
    and two fleets sharing one server must not hear each other. A hint for speed as
    well: with no scheduler listening the machine sends a dispatch task, and the periodic
    sweep dispatches anyway.
    """
    return f"fglab:dispatch:{database}"


def machine_queue(host: str) -> str:
    """The queue a machine's worker consumes: ``machine-<host>``."""
    if not host or any(c.isspace() for c in host):
        raise ValueError(f"machine name {host!r} must be non-empty and without spaces")
    return f"machine-{host}"


@dataclass(frozen=True)
class RunRequest:
    """What the scheduler sends to a machine: which experiment, under which reservation.

    The experiment itself (options, project) is read from MongoDB by the worker; the
    token proves the reservation in the ledger, so a stale or repeated message whose
    reservation is gone launches nothing.
    """

    experiment_id: str
    project_id: str
    machine: str
    token: str
    gpu: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunRequest:
        gpu = data.get("gpu")
        return cls(
            experiment_id=str(data["experiment_id"]),
            project_id=str(data["project_id"]),
            machine=str(data["machine"]),
            token=str(data["token"]),
            gpu=None if gpu is None else int(gpu),
        )


#: What a machine tells FGLab of a run (`EXPERIMENT_EVENT`): it started (a webhook waits),
#: it ended (webhooks or its sweep wait; room came free), or a sweep's trial reported a
#: new step (its pruner judges it).
STARTED, FINISHED, PROGRESS = "started", "finished", "progress"
EVENTS = (STARTED, FINISHED, PROGRESS)


@dataclass(frozen=True)
class ExperimentEvent:
    """The payload of `EXPERIMENT_EVENT`: the task's keyword arguments, by these names."""

    experiment_id: str
    event: str  # one of EVENTS
    #: Whether webhooks may wait on it (False: the worker knows none does).
    hooks: bool = True
    #: PROGRESS: the step reported.
    step: int | None = None
    #: FINISHED: whether it may be a sweep's trial (False: no read needed).
    trial: bool = True

    def __post_init__(self) -> None:
        if self.event not in EVENTS:
            raise ValueError(f"event {self.event!r} is not one of {', '.join(EVENTS)}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExperimentEvent:
        step = data.get("step")
        return cls(
            experiment_id=str(data["experiment_id"]),
            event=str(data["event"]),
            hooks=bool(data.get("hooks", True)),
            step=None if step is None else int(step),
            trial=bool(data.get("trial", True)),
        )
