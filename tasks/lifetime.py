"""Children that die with their parent (Linux ``PR_SET_PDEATHSIG``).

`fglab up` ties the services it starts to itself, and a worker ties each program it
launches to the thread that started it, so that a parent killed without warning leaves no
child running that it would have stopped. Elsewhere than Linux this does nothing.
"""

from __future__ import annotations

import ctypes
import signal
from collections.abc import Callable
from typing import Any

_PR_SET_PDEATHSIG = 1

_prctl: Callable[..., Any] | None
try:  # looked up here, not in the forked child, where only async-signal-safe work belongs
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # not Linux
    _prctl = None


def die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """A ``preexec_fn``: the child gets SIGKILL when the thread that started it dies."""
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
