"""The contract between FGLab and its machines: task names, queues, payloads, states.

`fglab/` and `worker/` never import each other; both import this package.
"""

from tasks.contract import (
    DISPATCH,
    RUN_EXPERIMENT,
    SERVER_QUEUE,
    SWEEP,
    DELIVER_WEBHOOK,
    RunRequest,
    machine_queue,
)
from tasks.states import ACTIVE, TERMINAL, Status

__all__ = [
    "ACTIVE",
    "DELIVER_WEBHOOK",
    "DISPATCH",
    "RUN_EXPERIMENT",
    "SERVER_QUEUE",
    "SWEEP",
    "TERMINAL",
    "RunRequest",
    "Status",
    "machine_queue",
]
