"""Projects: created from a schema file; their experiments are submitted here."""

from __future__ import annotations

import json
from pathlib import PurePath
from typing import Any

from flask import request
from flask_smorest import Blueprint

from fglab.api.bodies import doc_body, doc_multipart, json_body, parse_json
from fglab.api.listing import PAGE_PARAMETERS, json_list, page_args
from fglab.api.params import TAG_PARAMETER, priority_arg, seconds_arg, tags_arg
from fglab.errors import BadRequest, NotFound, TooLarge
from fglab.extensions import services
from fglab.schema import OptionsError, SchemaError, validate_options, validate_schema

blp = Blueprint("projects", __name__, url_prefix="/api/v1", description="Projects and submission")

#: The most option sets one batch may hold (as a search's combinations and a sweep's
#: budget): one request must not fill the store.
MAX_BATCH = 10_000
EXAMPLE_OPTIONS = {"seed": 123, "model": "cnn.v2", "L2": True}
TIMEOUT_PARAMETER = {
    "in": "query",
    "name": "timeout",
    "schema": {"type": "number"},
    "description": "Wall-clock limit in seconds; the run ends as `timeout` past it.",
}
PRIORITY_PARAMETER = {
    "in": "query",
    "name": "priority",
    "schema": {"type": "integer", "default": 0},
    "description": "Higher leaves the queue first; each point is worth a day of waiting "
    "(see the README's Priorities).",
}


def _project(project_id: str, *, missing_is: type = NotFound) -> dict[str, Any]:
    try:
        return services().store.projects.get(project_id)
    except NotFound as e:
        raise missing_is(e.message) from None


@blp.route("/projects/schema", methods=["POST"])
@blp.doc(**doc_multipart("schema", "The schema file; its name without .json names the project."))
@blp.response(201, description="The new project")
@blp.alt_response(400, description="No file, not JSON, or a malformed schema")
@blp.alt_response(409, description="A project of that name exists")
def create_project() -> Any:
    """Create a project from an uploaded schema file."""
    upload = request.files.get("schema")
    if upload is None or not upload.filename:
        raise BadRequest("No schema file uploaded; send it as multipart field 'schema'")
    name = PurePath(upload.filename).name
    if name.lower().endswith(".json"):
        name = name[: -len(".json")]
    if not name.strip():
        raise BadRequest(f"Schema file name {upload.filename!r} gives an empty project name")
    try:
        schema = parse_json(upload.read())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BadRequest(f"Schema file {upload.filename!r} is not valid JSON: {e}") from None
    try:
        schema = validate_schema(schema)
    except SchemaError as e:
        raise BadRequest(str(e)) from None
    store = services().store
    project_id = store.projects.create(name, schema)
    return store.projects.get(project_id)


@blp.route("/projects", methods=["GET"])
@blp.response(200, description="Every project, sorted by name")
def list_projects() -> Any:
    """List projects."""
    return services().store.projects.all()


@blp.route("/projects/<project_id>", methods=["GET"])
@blp.response(200, description="The project")
@blp.alt_response(404, description="No such project")
def get_project(project_id: str) -> Any:
    """Read one project."""
    return _project(project_id)


@blp.route("/projects/<project_id>/experiments", methods=["GET"])
@blp.doc(parameters=PAGE_PARAMETERS)
@blp.response(200, description="The project's experiments, oldest first (or one page)")
@blp.alt_response(400, description="A bad `limit` or `offset`")
@blp.alt_response(404, description="No such project")
def list_project_experiments(project_id: str) -> Any:
    """List a project's experiments (whole documents; streamed, or paged with `limit`)."""
    project = _project(project_id)
    offset, limit = page_args()
    store = services().store
    return json_list(
        store.list_experiments(project["_id"], offset=offset, limit=limit), offset, limit
    )


@blp.route("/projects/<project_id>/experiments", methods=["DELETE"])
@blp.response(200, description="How many experiments were deleted")
@blp.alt_response(404, description="No such project")
def delete_project_experiments(project_id: str) -> Any:
    """Delete a project's experiments and their files."""
    project = _project(project_id)
    return {"deleted": services().store.delete_project_experiments(project["_id"])}


@blp.route("/projects/<project_id>/experiments/files", methods=["DELETE"])
@blp.response(200, description="How many files were deleted")
@blp.alt_response(404, description="No such project")
def delete_project_files(project_id: str) -> Any:
    """Delete every stored file of a project's experiments."""
    project = _project(project_id)
    return {"deleted": services().store.delete_project_files(project["_id"])}


@blp.route("/projects/<project_id>/experiment", methods=["POST"])
@blp.doc(
    **doc_body("The experiment's options, one per schema field.", EXAMPLE_OPTIONS),
    parameters=[
        {
            "in": "query",
            "name": "queue",
            "schema": {"type": "boolean"},
            "description": "Keep the experiment queued when no machine has room (else 501).",
        },
        TIMEOUT_PARAMETER,
        PRIORITY_PARAMETER,
        TAG_PARAMETER,
    ],
)
@blp.response(201, description='{"_id": <experiment ID>}')
@blp.alt_response(400, description="No such project, or invalid options")
@blp.alt_response(501, description="No machine capacity available (and queue not asked)")
def submit_experiment(project_id: str) -> Any:
    """Submit one experiment."""
    project = _project(project_id, missing_is=BadRequest)
    options = _valid_options(project, json_body())
    queue = request.args.get("queue", "").lower() in {"1", "true", "yes"}
    extra = _submission_fields()
    experiment_id = services().scheduler.submit(
        project, options, queue=queue, extra=extra, priority=priority_arg()
    )
    return {"_id": experiment_id}, 201


@blp.route("/projects/<project_id>/batch", methods=["POST"])
@blp.doc(
    **doc_body("A list of option sets.", [EXAMPLE_OPTIONS]),
    parameters=[
        {
            "in": "query",
            "name": "retry",
            "schema": {"type": "number"},
            "description": "Accepted for compatibility; experiments wait in the queue instead.",
        },
        TIMEOUT_PARAMETER,
        PRIORITY_PARAMETER,
        TAG_PARAMETER,
    ],
)
@blp.response(201, description='{"status": "Started", "_ids": [...]}')
@blp.alt_response(400, description="No such project, or the first invalid option set")
@blp.alt_response(413, description="More than 10,000 option sets")
def submit_batch(project_id: str) -> Any:
    """Submit a batch: stored queued in one write, then placed by the dispatcher."""
    project = _project(project_id, missing_is=BadRequest)
    body = json_body()
    if not isinstance(body, list) or not body:
        raise BadRequest("Batch body must be a non-empty JSON list of option sets")
    if len(body) > MAX_BATCH:
        raise TooLarge(
            f"Batch of {len(body):,} option sets is over the cap of {MAX_BATCH:,}; "
            "send it in parts, or use a search or a sweep"
        )
    option_sets = [_valid_options(project, options) for options in body]
    ids = services().store.new_experiments(
        project["_id"], option_sets, extra=_submission_fields(), priority=priority_arg()
    )
    services().broker.ask_dispatch()
    return {"status": "Started", "_ids": ids}, 201


def _submission_fields() -> dict[str, Any]:
    """``?timeout=<seconds>`` (a wall-clock limit) and ``?tag=`` for this submission's
    experiments, as their fields."""
    fields: dict[str, Any] = {}
    seconds = seconds_arg("timeout")
    if seconds is not None:
        fields["_timeout"] = seconds
    tags = tags_arg()
    if tags:
        fields["_tags"] = tags
    return fields


def _valid_options(project: dict[str, Any], options: Any) -> dict[str, Any]:
    try:
        return validate_options(project["schema"], options)
    except OptionsError as e:
        raise BadRequest(str(e)) from None
