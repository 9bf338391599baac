"""The per-app services views reach through ``current_app`` (kept in ``app.extensions``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from flask import Flask, current_app

from config import Settings
from fglab.broker import Broker
from fglab.store import Store

if TYPE_CHECKING:
    from redis import Redis

    from fglab.scheduler import Scheduler


@dataclass
class Services:
    settings: Settings
    store: Store
    scheduler: Scheduler
    #: Sends FGLab's tasks (run requests, dispatch asks, "Add to machine").
    broker: Broker
    redis: Redis | None = None


def services(app: Flask | None = None) -> Services:
    return (app or current_app).extensions["fglab"]
