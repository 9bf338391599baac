"""The machine registry: machines register themselves; people read it."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from fglab.api.bodies import doc_body, json_object
from fglab.errors import BadRequest
from fglab.extensions import services

blp = Blueprint("machines", __name__, url_prefix="/api/v1", description="Machines")

EXAMPLE_MACHINE = {
    "hostname": "gpu-box-1",
    "address": "10.0.0.7",
    "os": {"type": "Linux", "platform": "linux", "arch": "x64", "release": "6.1.0"},
    "cpus": ["AMD EPYC 7742"],
    "mem": "251.80GB",
    "gpus": ["NVIDIA H100 80GB HBM3"],
}


@blp.route("/machines", methods=["GET"])
@blp.response(200, description="Every machine, sorted by hostname")
def list_machines() -> Any:
    """List machines."""
    return services().store.list_machines()


@blp.route("/machines/<machine_id>", methods=["GET"])
@blp.response(200, description="The machine")
@blp.alt_response(404, description="No such machine")
def get_machine(machine_id: str) -> Any:
    """Read one machine."""
    return services().store.get_machine(machine_id)


@blp.route("/machines", methods=["POST"])
@blp.doc(**doc_body("The machine's specifications; `hostname` names it.", EXAMPLE_MACHINE))
@blp.response(201, description='{"_id": <machine ID>}')
@blp.alt_response(400, description="No hostname")
def register_machine() -> Any:
    """Register (or update) a machine."""
    body = json_object()
    hostname = body.get("hostname")
    if not isinstance(hostname, str) or not hostname.strip() or any(c.isspace() for c in hostname):
        raise BadRequest("Field hostname must be a non-empty name without spaces")
    fields = {k: v for k, v in body.items() if k in EXAMPLE_MACHINE or not k.startswith("_")}
    fields.pop("_id", None)
    if any(name.startswith("$") or "." in name for name in fields):
        raise BadRequest("Field names may not start with '$' or contain '.'")
    doc = services().store.upsert_machine(hostname.strip(), fields)
    return {"_id": doc["_id"]}, 201


@blp.route("/machines/<machine_id>/projects", methods=["POST"])
@blp.doc(**doc_body("The projects this machine implements.", {"projects": {"<project_id>": {}}}))
@blp.response(200, description="The machine")
@blp.alt_response(400, description="Not a map of projects")
@blp.alt_response(404, description="No such machine")
def set_machine_projects(machine_id: str) -> Any:
    """Publish which projects a machine implements."""
    body = json_object()
    projects = body.get("projects", body)
    if not isinstance(projects, dict) or any("." in k or k.startswith("$") for k in projects):
        raise BadRequest("Body must be {\"projects\": {<project_id>: <implementation>}}")
    return services().store.set_machine_fields(machine_id, {"projects": projects})
