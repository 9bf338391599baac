"""Online guessing is slowed down: wrong passwords and tokens are counted per client
address (Flask-Limiter, counters in Redis, shared by every FGLab process), and an address
past `FGLAB_AUTH_RATE_LIMIT` is answered 429 until its window passes, right password or not.

Only wrong credentials count (the login form, basic auth, Bearer tokens): people and
scripts that authenticate are never slowed. Behind a reverse proxy every client has the
proxy's address, so the limit is then the proxy's as a whole.
"""

from __future__ import annotations

import logging
import math
import time

from flask import Flask, Response, g, jsonify, render_template, request
from flask_limiter import Limiter, RateLimitExceeded, RequestLimit
from flask_limiter.util import get_remote_address

from config import Settings

logger = logging.getLogger(__name__)


def install_rate_limit(app: Flask, settings: Settings) -> Limiter | None:
    """Count wrong credentials per address (only where a password is set). Call before
    the auth checks are installed, so a limited address is answered before them."""
    if not settings.password:
        return None
    app.register_error_handler(RateLimitExceeded, _answer)
    return Limiter(
        get_remote_address,
        app=app,
        storage_uri=settings.redis,
        storage_options={"socket_connect_timeout": 2, "socket_timeout": 2},
        # One FGLab per database: its counters are its own.
        key_prefix=f"fglab-auth:{settings.mongodb_db}",
        application_limits=[settings.auth_rate_limit],
        application_limits_deduct_when=_credentials_were_wrong,
        on_breach=_too_many,
        # Redis out of reach: count in this process rather than fail every request.
        in_memory_fallback_enabled=True,
        swallow_errors=True,
    )


def _answer(error: RateLimitExceeded) -> Response:
    """The answer `_too_many` made (the API's own HTTP error handler would drop it)."""
    if isinstance(error.response, Response):
        return error.response
    return jsonify(error=f"Too many requests ({error.description})")


def _credentials_were_wrong(response: Response) -> bool:
    return bool(g.get("fglab_auth_failed"))


def _too_many(limit: RequestLimit) -> Response:
    wait = max(1, math.ceil(limit.reset_at - time.time()))
    message = (
        f"Too many wrong passwords or tokens from {get_remote_address()} "
        f"({limit.limit}); try again in {wait} s"
    )
    logger.warning("%s", message)
    if request.path.startswith("/api"):
        answer = jsonify(error=message)
    else:
        answer = Response(render_template("login.html", next="/", error=message))
    answer.status_code = 429
    answer.headers["Retry-After"] = str(wait)
    return answer
