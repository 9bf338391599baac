"""Webhooks: a URL FGLab POSTs to when an experiment starts or finishes."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from flask import request
from flask_smorest import Blueprint

from fglab.api.bodies import doc_body, json_object
from fglab.errors import BadRequest, Conflict
from fglab.extensions import services
from fglab.outbound import private_address

blp = Blueprint("webhooks", __name__, url_prefix="/api/v1", description="Webhooks")

EVENTS = ("started", "finished")


@blp.route("/webhooks", methods=["POST"])
@blp.doc(
    **doc_body(
        "What to call, for which experiment and event.",
        {
            "url": "https://example.org/hook",
            "objects": "experiments",
            "object_id": "5f2a0c1e9d3b4a0012345678",
            "event": "finished",
        },
    )
)
@blp.response(201, description='{"status": "Registered", "options": <body>}')
@blp.alt_response(
    400,
    description="Invalid URL, object kind, event or object ID; a private address while "
    "FGLAB_WEBHOOK_ALLOW_PRIVATE is false",
)
@blp.alt_response(409, description="The experiment has FGLAB_WEBHOOK_LIMIT hooks already")
def register_webhook() -> Any:
    """Register a webhook."""
    body = json_object()
    url = body.get("url")
    parsed = urlparse(url) if isinstance(url, str) else None
    if parsed is None or parsed.scheme not in {"http", "https"} or not parsed.hostname:
        raise BadRequest("Invalid or empty URL")
    try:
        parsed.port  # noqa: B018 - parsing it is the check
    except ValueError as e:
        raise BadRequest("Invalid URL: the port is not a number from 0 to 65535") from e
    settings = services().settings
    if not settings.webhook_allow_private:
        refuse_private(parsed.hostname)
    if body.get("objects") != "experiments":
        raise BadRequest("Object is not 'experiments'")
    if body.get("event") not in EVENTS:
        raise BadRequest("Event is not 'started' or 'finished'")
    object_id = body.get("object_id")
    if not isinstance(object_id, str) or not object_id:
        raise BadRequest("No object ID provided")
    store = services().store
    full = Conflict(
        f"Experiment {object_id} has {settings.webhook_limit} webhooks, the most "
        "allowed (FGLAB_WEBHOOK_LIMIT)"
    )
    if store.webhooks.count_of(object_id) >= settings.webhook_limit:
        raise full
    hook_id = store.add_webhook({k: body[k] for k in ("url", "objects", "object_id", "event")})
    # Counted again once kept: of registrations racing past the cap, each takes its own
    # back out (both may, leaving room: never one too many).
    if store.webhooks.count_of(object_id) > settings.webhook_limit:
        store.webhooks.remove(hook_id)
        raise full
    return {"status": "Registered", "options": body}, 201


def refuse_private(host: str) -> None:
    """Refuse a host that is a private address, or a name every host gives one; other
    names are checked where they are resolved, at each delivery."""
    name = host.lower().rstrip(".")
    address = "127.0.0.1" if name == "localhost" or name.endswith(".localhost") else host
    private = private_address(address)
    if private:
        raise BadRequest(
            f"Webhook URL refused: address {private} is private "
            "(FGLAB_WEBHOOK_ALLOW_PRIVATE is false)"
        )


@blp.route("/webhooks", methods=["GET"])
@blp.doc(
    parameters=[
        {
            "in": "query",
            "name": "object_id",
            "schema": {"type": "string"},
            "description": "Only the hooks of this experiment (else every hook).",
        }
    ]
)
@blp.response(
    200,
    description="Hooks, oldest first, each with `deliveries` (one entry per attempt: "
    "`attempt`, `at`, `status` and/or `error`), `delivered` once an attempt got a 2xx, "
    "and `gave_up` once the retries ran out",
)
def list_hooks() -> Any:
    """List webhooks with their delivery history."""
    object_id = request.args.get("object_id") or None
    return services().store.webhooks.all(object_id)
