"""The contract between FGLab and its machines: task names, queues, payloads, states.

`fglab/` and `worker/` never import each other; both import this package.
"""

from tasks.contract import (
    ADD_PROJECT,
    DELIVER_WEBHOOK,
    DISPATCH,
    EXPERIMENT_EVENT,
    PROJECT_TEMPLATE,
    RUN_EXPERIMENT,
    SERVER_QUEUE,
    SWEEP,
    RunRequest,
    machine_queue,
)
from tasks.states import ACTIVE, TERMINAL, Status

__all__ = [
    "ACTIVE",
    "ADD_PROJECT",
    "DELIVER_WEBHOOK",
    "DISPATCH",
    "EXPERIMENT_EVENT",
    "PROJECT_TEMPLATE",
    "RUN_EXPERIMENT",
    "SERVER_QUEUE",
    "SWEEP",
    "TERMINAL",
    "RunRequest",
    "Status",
    "machine_queue",
]
