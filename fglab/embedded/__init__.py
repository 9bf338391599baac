"""Services `fglab up` and the tests start themselves when none is configured."""

from __future__ import annotations

import ctypes
import signal
from collections.abc import Callable
from typing import Any

_prctl: Callable[..., Any] | None
try:  # looked up here, not in the forked child, where only async-signal-safe work belongs
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # not Linux
    _prctl = None


def die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """``preexec_fn`` of `fglab up`'s children: on Linux, SIGKILL if `fglab up` dies first.

    So a killed `fglab up` leaves no child running that it would have stopped.
    """
    if _prctl is not None:
        _prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
