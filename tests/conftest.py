"""Fixtures every test may use; services start only when a test asks for them."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from config import Settings

#: Variables the suite reads itself, before the autouse fixture clears FGLAB_* ones.
SUITE_MONGODB_URI = os.environ.get("MONGODB_URI")
SUITE_REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/9")


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the developer's FGLab settings."""
    for name in list(os.environ):
        if name.startswith("FGLAB_") or name in {"MONGODB_URI", "REDIS_URL", "PASSWORD"}:
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def mongo_uri() -> Iterator[str]:
    """A MongoDB: the one at MONGODB_URI, or an embedded wire server (memory engine)."""
    if SUITE_MONGODB_URI:
        yield SUITE_MONGODB_URI
        return
    from fglab.embedded import mongo

    server = mongo.start("memory")
    try:
        yield server.uri
    finally:
        server.stop()


@pytest.fixture(scope="session")
def mongo_client(mongo_uri: str) -> Iterator[object]:
    from pymongo import MongoClient

    client = MongoClient(mongo_uri, serverSelectionTimeoutMS=5000, tz_aware=True)
    yield client
    client.close()


@pytest.fixture
def database_name() -> str:
    return f"fglab_test_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def db(mongo_client, database_name: str) -> Iterator[object]:
    """A fresh database for one test, dropped afterwards."""
    database = mongo_client[database_name]
    yield database
    mongo_client.drop_database(database_name)


@pytest.fixture(scope="session")
def redis_url() -> str:
    """Real Redis (a database of the suite's own, flushed once per run)."""
    import redis

    client = redis.Redis.from_url(SUITE_REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError:
        pytest.exit(
            f"Redis does not answer at {SUITE_REDIS_URL}; start it with "
            "`redis-server --daemonize yes --port 6379 --save '' --appendonly no` "
            "or point REDIS_URL at one",
            returncode=3,
        )
    client.flushdb()
    client.close()
    return SUITE_REDIS_URL


@pytest.fixture
def settings(mongo_uri: str, database_name: str, tmp_path) -> Settings:
    return Settings(
        mongodb_uri=mongo_uri,
        mongodb_db=database_name,
        redis_url=SUITE_REDIS_URL,
        machine_name="test-machine",
        data_dir=tmp_path / "data",
        projects_file=tmp_path / "projects.json",
    )
