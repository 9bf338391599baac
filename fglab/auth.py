"""The original's one password: with PASSWORD set, every request needs HTTP basic auth."""

from __future__ import annotations

import hmac
from typing import Any

from flask import Flask, Response, request


def install_auth(app: Flask, password: str | None) -> None:
    if not password:
        return

    @app.before_request
    def _require_password() -> Any:
        auth = request.authorization
        given = auth.password if auth is not None and auth.password is not None else ""
        if hmac.compare_digest(given.encode(), password.encode()):
            return None
        return Response(
            '{"error": "Authentication required"}',
            401,
            {"WWW-Authenticate": 'Basic realm="FGLab"', "Content-Type": "application/json"},
        )
