"""The machine registry: machines register themselves; people read it."""

from __future__ import annotations

from typing import Any

from flask import request
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
        raise BadRequest('Body must be {"projects": {<project_id>: <implementation>}}')
    return services().store.set_machine_fields(machine_id, {"projects": projects})


@blp.route("/machines/<machine_id>/projects/<project_id>", methods=["POST"])
@blp.response(202, description="The template is on its way to the machine's projects.json")
@blp.alt_response(404, description="No such machine or project")
@blp.alt_response(503, description="The broker (Redis) is unreachable")
def add_project_to_machine(machine_id: str, project_id: str) -> Any:
    """Add to machine: write a template entry for the project into its projects.json.

    The machine's worker writes the file (FGLab never reaches into machines); edit the
    entry's command and paths there, and the machine picks the change up by itself.
    """
    store = services().store
    machine = store.get_machine(machine_id)
    project = store.projects.get(project_id)
    services().broker.add_project(machine["_id"], str(project["_id"]))
    return {"status": "Sent", "machine": machine["_id"], "project": str(project["_id"])}, 202


@blp.route("/machines/<machine_id>/drain", methods=["POST"])
@blp.response(200, description="The machine, drained")
@blp.alt_response(404, description="No such machine")
def drain_machine(machine_id: str) -> Any:
    """Drain a machine: it finishes what runs and takes nothing new."""
    body = json_object() if request.get_data() else {}
    reason = body.get("reason") or "drained from the API"
    return services().store.drain_machine(machine_id, str(reason))


@blp.route("/machines/<machine_id>/resume", methods=["POST"])
@blp.response(200, description="The machine, taking work again")
@blp.alt_response(404, description="No such machine")
def resume_machine(machine_id: str) -> Any:
    """Resume a drained machine; the scheduler is asked to dispatch queued work to it."""
    doc = services().store.resume_machine(machine_id)
    services().broker.ask_dispatch()
    return doc
