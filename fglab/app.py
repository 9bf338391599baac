"""The Flask app factory: ``create_app(settings)`` wires store, scheduler, API and pages."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, jsonify, request
from pymongo.errors import ConnectionFailure, OperationFailure, ServerSelectionTimeoutError
from redis import Redis
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from config import Settings
from fglab.auth import install_auth
from fglab.broker import Broker
from fglab.errors import FGLabError
from fglab.extensions import Services
from fglab.jsonify import FGLabJSONProvider
from fglab.ratelimit import install_rate_limit
from fglab.scheduler import Scheduler, connect_scheduler
from fglab.security_headers import install_security_headers
from fglab.store import Store
from fglab.streams import install_stream_slots
from tasks.app import create_celery
from tasks.database import mongo_client

logger = logging.getLogger(__name__)


def create_app(
    settings: Settings,
    *,
    store: Store | None = None,
    scheduler: Scheduler | None = None,
    redis: Redis | None = None,
) -> Flask:
    app = Flask(__name__)
    app.json = FGLabJSONProvider(app)
    app.config.update(
        MAX_CONTENT_LENGTH=settings.max_request_bytes,
        API_TITLE="FGLab",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/api",
        OPENAPI_JSON_PATH="openapi.json",
        # No OPENAPI_SWAGGER_UI_PATH: fglab.web.docs serves /api/docs without inline script.
    )
    if store is None:
        store = Store(mongo_client(settings)[settings.mongodb_db])
        store.ensure_indexes()
    if redis is None:
        redis = Redis.from_url(settings.redis)
    broker = Broker(create_celery(settings, "fglab-web"))
    if scheduler is None:
        scheduler = connect_scheduler(settings, broker, store, redis)
    app.extensions["fglab"] = Services(
        settings=settings, store=store, scheduler=scheduler, broker=broker, redis=redis
    )
    install_stream_slots(app, settings)
    _install_error_handlers(app)
    _check_hosts(app, settings.trusted_hosts)
    install_rate_limit(app, settings)
    install_auth(app, settings)
    install_security_headers(app)

    from fglab.api import register_api

    register_api(app)
    from fglab.web import register_pages

    register_pages(app)
    return app


def _check_hosts(app: Flask, trusted: tuple[str, ...]) -> None:
    """With FGLAB_TRUSTED_HOSTS, a request whose Host header names another host is refused
    before anything reads it: a page elsewhere that rebinds its own name to this server's
    address cannot talk to FGLab."""
    if not trusted:
        return

    @app.before_request
    def _trusted_host() -> Any:
        host = (request.headers.get("Host") or "").rsplit(":", 1)[0].strip("[]").lower()
        if host not in trusted:
            return jsonify(error=f"Host {host!r} is not one FGLab answers to"), 400
        return None


def _install_error_handlers(app: Flask) -> None:
    """Translate errors once, here: every answer is ``{"error": message}``."""

    @app.errorhandler(FGLabError)
    def _fglab_error(error: FGLabError) -> Any:
        headers = {"Retry-After": str(error.retry_after)} if error.retry_after else {}
        return jsonify(error=error.message), error.status, headers

    @app.errorhandler(RequestEntityTooLarge)
    def _too_large(error: RequestEntityTooLarge) -> Any:
        limit = app.config["MAX_CONTENT_LENGTH"]
        return jsonify(error=f"Request body is over the limit of {limit} bytes"), 413

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> Any:
        message = getattr(error, "data", {}).get("message") if hasattr(error, "data") else None
        return jsonify(error=str(message or error.description)), error.code

    @app.errorhandler(ServerSelectionTimeoutError)
    @app.errorhandler(ConnectionFailure)
    def _database_down(error: Exception) -> Any:
        logger.warning("MongoDB unreachable: %s", error)
        return jsonify(error="MongoDB is unreachable; try again shortly"), 503

    @app.errorhandler(OperationFailure)
    def _database_refused(error: OperationFailure) -> Any:
        logger.warning("MongoDB refused an operation: %s", error)
        return jsonify(error=f"MongoDB refused the operation: {error.details or error}"), 400
