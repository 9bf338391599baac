"""FGLab's HTTP API: the original's routes under ``/api/v1``, documented at ``/api/docs``."""

from __future__ import annotations

from flask import Flask
from flask_smorest import Api

from fglab.api import (
    charts,
    experiments,
    files,
    logs,
    machines,
    projects,
    search,
    sweeps,
    table,
    tokens,
    webhooks,
)


def register_api(app: Flask) -> Api:
    api = Api(
        app,
        spec_kwargs={
            "info": {"description": "FGLab fleet: experiments, projects, machines, files."}
        },
    )
    for module in (
        projects, experiments, table, machines, files, webhooks, logs, charts, search, sweeps,
        tokens,
    ):  # fmt: skip
        api.register_blueprint(module.blp)
    return api
