"""Experiment statuses and the graph of moves between them.

    queued --dispatch--> dispatched --claim--> claimed --start--> running
      ^                     |                     |                  |
      +------requeue--------+                     +------finish------+--> success | fail
    queued | dispatched --cancel--> cancelled      |                  |     killed | timeout
                                                  |                  |     pruned
                                                  +-------lose-------+--> lost

``pruned`` is a sweep's early stop: a kill that the sweep asked for
(`tasks.experiments.request_prune`) ends as ``pruned`` with the pruner's reason.

`tasks.experiments` performs each move as a compare-and-set in MongoDB on the statuses
listed in :data:`MOVES`, so two deliveries of the same message, or a kill racing an exit,
cannot both win.
"""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    QUEUED = "queued"  # waiting for a machine with room
    DISPATCHED = "dispatched"  # reserved on a machine, run task sent
    CLAIMED = "claimed"  # a worker took the task and is starting the program
    RUNNING = "running"
    SUCCESS = "success"
    FAIL = "fail"
    KILLED = "killed"
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"
    LOST = "lost"  # its worker died or its reservation expired
    PRUNED = "pruned"  # a sweep stopped it early: its objective lagged the others'


#: Statuses in which a machine's worker holds the run (it took the task; the program may
#: not have started yet): what a finish or a loss moves from.
ON_MACHINE = frozenset({Status.CLAIMED, Status.RUNNING})
#: Statuses that hold a reservation on a machine.
ACTIVE = frozenset({Status.DISPATCHED, *ON_MACHINE})
#: Statuses an experiment never leaves.
TERMINAL = frozenset(
    {
        Status.SUCCESS,
        Status.FAIL,
        Status.KILLED,
        Status.TIMEOUT,
        Status.CANCELLED,
        Status.LOST,
        Status.PRUNED,
    }
)
#: How a run on a machine may end (`tasks.experiments.finish`).
ENDINGS = frozenset({Status.SUCCESS, Status.FAIL, Status.KILLED, Status.TIMEOUT, Status.PRUNED})

#: Every move: its name -> (the statuses it starts from, the statuses it may lead to).
MOVES: dict[str, tuple[frozenset[Status], frozenset[Status]]] = {
    "dispatch": (frozenset({Status.QUEUED}), frozenset({Status.DISPATCHED})),
    "requeue": (frozenset({Status.DISPATCHED}), frozenset({Status.QUEUED})),
    "cancel": (frozenset({Status.QUEUED, Status.DISPATCHED}), frozenset({Status.CANCELLED})),
    "claim": (frozenset({Status.DISPATCHED}), frozenset({Status.CLAIMED})),
    "start": (frozenset({Status.CLAIMED}), frozenset({Status.RUNNING})),
    "finish": (ON_MACHINE, ENDINGS),
    "lose": (ON_MACHINE, frozenset({Status.LOST})),
}


def next_statuses(status: Status) -> frozenset[Status]:
    """The statuses an experiment in `status` may move to (none from a terminal one)."""
    reachable: set[Status] = set()
    for sources, targets in MOVES.values():
        if status in sources:
            reachable |= targets
    return frozenset(reachable)
