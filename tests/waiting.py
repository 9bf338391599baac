"""The suite's one polling helper: wait for a condition, or fail saying what was awaited."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(condition: Callable[[], T], timeout: float, what: str, interval: float = 0.05) -> T:
    """Poll `condition` until it returns something truthy, and return that.

    Raises AssertionError("timed out after {timeout}s waiting for {what}") when `timeout`
    seconds pass first; `condition` is asked once more at the deadline, so a slow poll
    never fails a condition that holds. `what` completes "waiting for ...", e.g. "the
    experiment to succeed".
    """
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(min(interval, max(0.0, deadline - time.monotonic())))
