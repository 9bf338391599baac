"""Connecting to FGLab's MongoDB, the same way on the server and on the machines."""

from __future__ import annotations

from pymongo import MongoClient

from config import Settings


def mongo_client(settings: Settings) -> MongoClient:
    """A client with short server selection, so an outage is noticed in seconds, not 30 s.

    Raises ValueError when ``MONGODB_URI`` is not set.
    """
    if not settings.mongodb_uri:
        raise ValueError("MONGODB_URI is not set; `fglab up` starts an embedded server for you")
    return MongoClient(settings.mongodb_uri, serverSelectionTimeoutMS=5000, tz_aware=True)
