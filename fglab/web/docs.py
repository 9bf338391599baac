"""The API docs page, ``/api/docs``: Swagger UI over the OpenAPI spec (swagger-ui-dist 5.35,
shipped with FGLab, so the page works offline).

flask-smorest's own page starts Swagger UI with an inline script, which FGLab's
Content-Security-Policy (``script-src 'self'``) refuses; this one passes the settings as
JSON data and starts it from a script file, ``/assets/js/api-docs.js``.
"""

from __future__ import annotations

from flask import Blueprint, render_template, url_for

__all__ = ["docs"]

docs = Blueprint("docs", __name__)


@docs.route("/api/docs")
def api_docs() -> str:
    """Swagger UI for ``/api/openapi.json``."""
    config = {
        "url": url_for("api-docs.openapi_json"),
        "dom_id": "#swagger-ui",
        # Swagger UI would otherwise load a badge from validator.swagger.io.
        "validatorUrl": None,
    }
    return render_template("api_docs.html", config=config)
