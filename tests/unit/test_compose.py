"""docker-compose.yml: MongoDB and Redis need credentials from .env and stay off the host."""

from __future__ import annotations

from pathlib import Path

import yaml

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"


def services() -> dict:
    return yaml.safe_load(COMPOSE.read_text())["services"]


def test_databases_are_not_published_to_the_host() -> None:
    for name in ("mongo", "redis"):
        assert "ports" not in services()[name], f"{name} must not be reachable from the host"


def test_databases_take_their_credentials_from_env() -> None:
    mongo, redis = services()["mongo"], services()["redis"]
    assert mongo["environment"]["MONGO_INITDB_ROOT_PASSWORD"].startswith("${MONGO_ROOT_PASSWORD")
    assert "--requirepass" in redis["command"]
    assert redis["command"][redis["command"].index("--requirepass") + 1].startswith(
        "${REDIS_PASSWORD"
    )


def test_every_fleet_process_connects_with_those_credentials() -> None:
    for name in ("web", "scheduler", "webhooks", "beat", "worker", "flower"):
        environment = services()[name]["environment"]
        assert "${MONGO_ROOT_PASSWORD" in environment["MONGODB_URI"], name
        assert "${REDIS_PASSWORD" in environment["REDIS_URL"], name


def test_the_published_web_server_requires_a_password() -> None:
    web = yaml.safe_load(COMPOSE.read_text())["services"]["web"]
    assert web["environment"]["PASSWORD"].startswith("${PASSWORD:?")
