"""Delivering webhooks: the registered body POSTed to its URL, with a delivery history."""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from typing import Any

from bson import ObjectId

from fglab.store import Store, now

logger = logging.getLogger(__name__)


class DeliveryFailed(Exception):
    """The endpoint did not answer 2xx; Celery retries the delivery with backoff."""


def hooks_for(store: Store, experiment_id: str, event: str) -> list[ObjectId]:
    return [hook["_id"] for hook in store.webhooks_for(experiment_id, event)]


def deliver(store: Store, hook_id: ObjectId, timeout: float = 10.0) -> int:
    """POST one webhook's body to its URL; record the attempt; raise DeliveryFailed on error."""
    hook = store.webhooks.find_one({"_id": hook_id})
    if hook is None:
        return 0
    body = {k: hook[k] for k in ("url", "objects", "object_id", "event")}
    request = urllib.request.Request(
        hook["url"],
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "User-Agent": "FGLab-webhook"},
        method="POST",
    )
    attempt: dict[str, Any] = {"at": now()}
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            attempt["status"] = response.status
    except urllib.error.HTTPError as e:
        attempt["status"], attempt["error"] = e.code, str(e)
    except (urllib.error.URLError, OSError) as e:
        attempt["error"] = str(getattr(e, "reason", e))
    store.webhooks.update_one({"_id": hook_id}, {"$push": {"deliveries": attempt}})
    if "error" in attempt:
        raise DeliveryFailed(f"webhook {hook_id} to {hook['url']}: {attempt['error']}")
    store.webhooks.update_one({"_id": hook_id}, {"$set": {"delivered": attempt["at"]}})
    return int(attempt["status"])
