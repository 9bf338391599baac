"""FGLab from Python: submit, follow and read experiments and sweeps over the HTTP API.

    from fglab.client import Client
    lab = Client()  # FGLAB_URL, FGLAB_TOKEN
    run = lab.submit("demo", {"lr": 0.01}).wait()

Standard library only (no Flask, no pymongo): a notebook needs nothing else installed.
"""

from fglab.client.client import DEFAULT_URL, Client
from fglab.client.errors import (
    BadRequest,
    Conflict,
    FGLabError,
    NotFound,
    Unauthorized,
    Unreachable,
    WaitTimeout,
)
from fglab.client.objects import Experiment, Experiments, LogEntry, Sweep
from fglab.client.records import parse_objective, to_record

__all__ = [
    "DEFAULT_URL",
    "BadRequest",
    "Client",
    "Conflict",
    "Experiment",
    "Experiments",
    "FGLabError",
    "LogEntry",
    "NotFound",
    "Sweep",
    "Unauthorized",
    "Unreachable",
    "WaitTimeout",
    "parse_objective",
    "to_record",
]
