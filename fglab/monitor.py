"""Flower as FGLab ships it: one command and environment for `fglab up`, the Procfile
and docker-compose, so Flower is protected exactly when FGLab is.

With a PASSWORD, Flower asks for HTTP basic auth: user name ``fglab`` (`FLOWER_USER`),
FGLab's password; its HTTP API (``/api/workers``, ``/api/tasks``) takes the same
credentials. Without one, FGLab is open and so is Flower, API included (Flower 2 refuses
its API without authentication unless told otherwise). The password travels in the
environment (``FLOWER_BASIC_AUTH``), never on a command line others can read in ``ps``.
Task events are on: the workers send them (`tasks.app`) and Flower asks for them.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping

from config import Settings

#: The user name Flower's basic auth expects (FGLab itself accepts any).
FLOWER_USER = "fglab"


class FlowerConfigError(ValueError):
    """Flower cannot be started with these settings; the message says what to change."""


def flower_command(settings: Settings, address: str) -> list[str]:
    """``celery -A worker flower`` on `address` and FGLAB_FLOWER_PORT, events on."""
    return [
        sys.executable, "-m", "celery", "-A", "worker", "flower",
        f"--port={settings.flower_port}", f"--address={address}", "--enable-events",
    ]  # fmt: skip


def flower_environment(settings: Settings, base: Mapping[str, str]) -> dict[str, str]:
    """`base` with Flower's authentication set from FGLab's PASSWORD (see the module).

    Raises FlowerConfigError for a password Flower cannot take (it splits on commas).
    """
    env = {
        k: v
        for k, v in base.items()
        if k not in ("FLOWER_BASIC_AUTH", "FLOWER_UNAUTHENTICATED_API")
    }
    if settings.password:
        if "," in settings.password:
            raise FlowerConfigError(
                "PASSWORD contains ',', which Flower's basic auth cannot take (it splits "
                "its credentials on commas); choose a PASSWORD without a comma"
            )
        env["FLOWER_BASIC_AUTH"] = f"{FLOWER_USER}:{settings.password}"
    else:
        env["FLOWER_UNAUTHENTICATED_API"] = "true"
    return env
