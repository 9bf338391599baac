"""The machine side of FGLab fleet; ``celery -A worker worker`` finds :data:`app` here."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from celery import Celery

__all__ = ["app"]


def __getattr__(name: str) -> Any:
    # Loaded on first use so that importing worker.argv or worker.projects in tests
    # does not read settings or build a Celery app.
    if name == "app":
        from worker.celery import app

        return app
    raise AttributeError(name)


if TYPE_CHECKING:
    app: Celery
