"""Experiment statuses and the moves between them.

Every move is a compare-and-set in MongoDB (`find_one_and_update` on the expected
status), so two deliveries of the same message, or a kill racing an exit, cannot both win.
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


#: Statuses that hold a reservation on a machine.
ACTIVE = frozenset({Status.DISPATCHED, Status.CLAIMED, Status.RUNNING})
#: Statuses an experiment never leaves.
TERMINAL = frozenset(
    {Status.SUCCESS, Status.FAIL, Status.KILLED, Status.TIMEOUT, Status.CANCELLED, Status.LOST}
)
