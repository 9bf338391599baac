"""API tokens: secrets scripts send as ``Authorization: Bearer <token>`` instead of the password."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from fglab.api.bodies import doc_body, json_object
from fglab.auth import create_token, list_tokens, revoke_token
from fglab.errors import BadRequest
from fglab.extensions import services

blp = Blueprint("tokens", __name__, url_prefix="/api/v1", description="API tokens")

MAX_NAME = 200
#: The longest a token may be made valid for, in days (ten years).
MAX_DAYS = 3650


@blp.route("/tokens", methods=["POST"])
@blp.doc(
    **doc_body(
        "What the token is for, and optionally for how many days it is valid "
        f"(up to {MAX_DAYS:,}; without `days` it is valid until revoked).",
        {"name": "nightly sweep", "days": 30},
    )
)
@blp.response(
    201,
    description='`{"token": <secret, shown only now>, "_id", "name", "_created"}`, '
    "and `_expires` when it expires",
)
@blp.alt_response(400, description="No name, or a bad `days`")
def post_token() -> Any:
    """Create an API token; keep the answer's `token`, FGLab stores only its hash."""
    body = json_object()
    name = body.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME:
        raise BadRequest(f'Body must be {{"name": <1 to {MAX_NAME} characters>}}')
    days = body.get("days")
    if days is not None and (
        isinstance(days, bool) or not isinstance(days, int | float) or not 0 < days <= MAX_DAYS
    ):
        raise BadRequest(f"days is {days!r}; use a number of days above 0, at most {MAX_DAYS:,}")
    return create_token(services().store, name.strip(), days), 201


@blp.route("/tokens", methods=["GET"])
@blp.response(
    200, description="Every token's `_id`, `name`, `_created` and `_expires` (no secrets)"
)
def get_tokens() -> Any:
    """List API tokens."""
    return list_tokens(services().store)


@blp.route("/tokens/<token_id>", methods=["DELETE"])
@blp.response(200, description='`{"status": "Revoked", "_id": <token ID>}`')
@blp.alt_response(400, description="Not an ObjectId")
@blp.alt_response(404, description="No such token")
def delete_token(token_id: str) -> Any:
    """Revoke an API token: requests that send it are refused from now on."""
    return {"status": "Revoked", "_id": revoke_token(services().store, token_id)}
