"""The per-app services views reach through ``current_app`` (kept in ``app.extensions``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from celery import Celery
from flask import Flask, current_app

from config import Settings
from fglab.store import Store

if TYPE_CHECKING:
    from redis import Redis

    from fglab.scheduler import Scheduler


@dataclass
class Services:
    settings: Settings
    store: Store
    scheduler: Scheduler
    redis: Redis | None = None
    #: Sends tasks to machines' queues (e.g. "Add to machine").
    celery: Celery | None = None


def services(app: Flask | None = None) -> Services:
    return (app or current_app).extensions["fglab"]
