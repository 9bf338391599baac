"""FGLab's web pages: server-rendered Jinja2 templates and one small script, no build step."""

from __future__ import annotations

from flask import Flask

from fglab.web.docs import docs
from fglab.web.views import pages

__all__ = ["pages", "register_pages"]


def register_pages(app: Flask) -> None:
    """Serve the pages (``/``, ``/projects/<id>``, ``/experiments/<id>``, ``/machines/<id>``)
    and the API docs (``/api/docs``)."""
    # Jinja's `|tojson` sorts keys by default; keep the stored order (schema fields in order).
    app.jinja_env.policies["json.dumps_kwargs"] = {}
    app.register_blueprint(pages)
    app.register_blueprint(docs)
