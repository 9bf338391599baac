"""Delivering webhooks: the registered body POSTed to its URL, with a delivery history.

A hook document keeps every attempt in ``deliveries`` (``attempt``, ``at``, and ``status``
and/or ``error``), ``delivered`` once an attempt got a 2xx, and ``gave_up`` once the
retries ran out (at once for a redirect or a refused address); nothing is ever deleted.
How one POST is made safe to send from the server: `fglab.outbound`.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from bson import ObjectId

from fglab.outbound import PostFailed, Refused, post
from fglab.store import Store, now

logger = logging.getLogger(__name__)

#: The registration fields POSTed as the body, as the original does.
BODY_FIELDS = ("url", "objects", "object_id", "event")
HEADERS = {"Content-Type": "application/json", "User-Agent": "FGLab-webhook"}
#: Longest wait between two attempts, in seconds.
MAX_DELAY = 600.0
#: Retries after the first attempt before a hook is given up.
MAX_RETRIES = 10


class DeliveryFailed(Exception):
    """The endpoint did not answer 2xx; Celery retries the delivery with backoff unless
    it is `final` (a redirect, a refused address: trying again would change nothing)."""

    def __init__(self, message: str, *, final: bool = False) -> None:
        super().__init__(message)
        self.final = final


def retry_delay(first: float, retries: int, cap: float = MAX_DELAY) -> float:
    """Seconds to wait before retry number `retries` + 1: `first`, doubling, at most `cap`."""
    return min(cap, first * 2.0 ** min(retries, 32))


def hooks_for(store: Store, experiment_id: str, event: str) -> list[ObjectId]:
    """IDs of the hooks registered for this experiment and this event, and no other."""
    return [hook["_id"] for hook in store.webhooks.of(experiment_id, event)]


def deliver(
    store: Store,
    hook_id: ObjectId,
    attempt: int = 1,
    timeout: float = 10.0,
    allow_private: bool = True,
) -> int:
    """POST one webhook's body to its URL within `timeout` seconds in all; record the
    attempt; raise DeliveryFailed on error.

    `attempt` counts from 1 and is stored with the attempt. Returns the HTTP status, or 0
    when the hook no longer exists.
    """
    hook = store.webhooks.lookup(hook_id)
    if hook is None:
        return 0
    body = json.dumps({k: hook[k] for k in BODY_FIELDS}).encode()
    record: dict[str, Any] = {"attempt": attempt, "at": now()}
    final = False
    try:
        status = post(hook["url"], body, HEADERS, timeout=timeout, allow_private=allow_private)
    except PostFailed as e:
        record["error"], final = str(e), isinstance(e, Refused)
    else:
        record["status"] = status
        if 300 <= status < 400:
            record["error"], final = f"redirect not followed (status {status})", True
        elif not 200 <= status < 300:
            record["error"] = f"HTTP {status}"
    store.webhooks.record_delivery(hook_id, record)
    if "error" in record:
        raise DeliveryFailed(
            f"webhook {hook_id} to {hook['url']}, attempt {attempt}: {record['error']}",
            final=final,
        )
    return int(record["status"])


def give_up(store: Store, hook_id: ObjectId, attempts: int) -> None:
    """Mark a hook given up after `attempts` failed attempts; its history stays.

    The caller re-raises the last failure, so Celery logs it once.
    """
    store.webhooks.give_up(hook_id, attempts)
