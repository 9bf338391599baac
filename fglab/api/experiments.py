"""Experiments: read, annotate, stamp, attach files, delete."""

from __future__ import annotations

import mimetypes
from pathlib import PurePath
from typing import Any

from flask import request
from flask_smorest import Blueprint

from fglab.api.bodies import doc_body, doc_multipart, json_object
from fglab.api.listing import PAGE_PARAMETERS, json_list, page_args
from fglab.errors import BadRequest
from fglab.extensions import services
from fglab.schema import OptionsError, validate_options
from fglab.store import now, object_id
from fglab.tags import TagError, parse_tags
from tasks.experiments import user_writable
from tasks.states import Status

blp = Blueprint("experiments", __name__, url_prefix="/api/v1", description="Experiments")

#: The most fields one `?fields=` read names.
MAX_FIELDS = 30


@blp.route("/experiments", methods=["GET"])
@blp.doc(parameters=PAGE_PARAMETERS)
@blp.response(200, description="Every experiment, oldest first (or one page of them)")
@blp.alt_response(400, description="A bad `limit` or `offset`")
def list_experiments() -> Any:
    """List experiments (whole documents; streamed, or paged with `limit`)."""
    offset, limit = page_args()
    return json_list(services().store.list_experiments(offset=offset, limit=limit), offset, limit)


@blp.route("/experiments/<experiment_id>", methods=["GET"])
@blp.doc(
    parameters=[
        {
            "in": "query",
            "name": "fields",
            "schema": {"type": "string"},
            "description": "Only these top-level fields (comma-separated, `_id` always "
            "comes): what a page polls, e.g. `_status,_scores,_started,_finished,_exit`",
        }
    ]
)
@blp.response(200, description="The experiment")
@blp.alt_response(400, description="A bad field name")
@blp.alt_response(404, description="No such experiment")
def get_experiment(experiment_id: str) -> Any:
    """Read one experiment (large fields such as long `_charts` included whole)."""
    store = services().store
    fields = _fields_arg()
    if fields is not None:
        return store.resolve_large_fields(store.get_experiment(experiment_id, fields))
    doc = store.resolve_large_fields(store.get_experiment(experiment_id))
    if doc["_status"] == Status.QUEUED:
        doc["_queue_position"] = store.queue_position(doc)
    return doc


def _fields_arg() -> list[str] | None:
    raw = request.args.get("fields")
    if raw is None:
        return None
    names = [name.strip() for name in raw.split(",") if name.strip()]
    if not names or len(names) > MAX_FIELDS:
        raise BadRequest(f"fields is {raw!r}; name 1 to {MAX_FIELDS} fields, comma-separated")
    for name in names:
        if name.startswith("$") or "." in name or "\0" in name or len(name) > 200:
            raise BadRequest(f"Field name {name!r} is not allowed; use a plain top-level name")
    return names


@blp.route("/experiments/<experiment_id>/history", methods=["GET"])
@blp.response(200, description='[{"step": n, "scores": {...}, "at": time}], oldest step first')
@blp.alt_response(404, description="No such experiment")
def get_history(experiment_id: str) -> Any:
    """Read the points a program reported while it ran (a results JSON file with
    `_scores` and `_step`)."""
    store = services().store
    store.get_experiment(experiment_id, ["_id"])
    return store.history(experiment_id)


@blp.route("/experiments/<experiment_id>/rerun", methods=["POST"])
@blp.response(201, description='{"_id": <the new experiment\'s ID>}')
@blp.alt_response(400, description="Its project is gone, or its options no longer fit the schema")
@blp.alt_response(404, description="No such experiment")
def rerun_experiment(experiment_id: str) -> Any:
    """Submit a new experiment with the same options (time limit and tags); it waits in the
    queue when no machine has room. Its log says when its code is at another commit than
    the original's."""
    store = services().store
    doc = store.get_experiment(experiment_id)
    project = store.projects.lookup(doc.get("_project_id"))
    if project is None:
        raise BadRequest(f"Project ID {doc.get('_project_id')} does not exist")
    try:
        options = validate_options(project["schema"], doc.get("_options"))
    except OptionsError as e:
        raise BadRequest(f"Experiment {experiment_id} cannot be rerun: {e}") from None
    extra = {name: doc[name] for name in ("_timeout", "_tags") if doc.get(name)}
    # Its worker compares the code it runs with the original's (`_code.commit`).
    extra["_rerun_of"] = doc["_id"]
    priority = int(doc.get("_priority") or 0)
    new_id = services().scheduler.submit(
        project, options, queue=True, extra=extra, priority=priority
    )
    return {"_id": new_id}, 201


@blp.route("/experiments/<experiment_id>/front", methods=["POST"])
@blp.response(200, description="The experiment, now first in the queue")
@blp.alt_response(404, description="No such experiment")
@blp.alt_response(409, description="The experiment is not queued")
def move_to_front(experiment_id: str) -> Any:
    """Move a queued experiment to the front of the queue: the next free room that fits
    it takes it."""
    store = services().store
    doc = store.move_to_front(experiment_id)
    doc["_queue_position"] = store.queue_position(doc)
    services().broker.ask_dispatch()
    return doc


@blp.route("/experiments/<experiment_id>", methods=["PUT"])
@blp.doc(**doc_body("Top-level fields to set.", {"_notes": "Best at epoch 55"}))
@blp.response(200, description="The updated experiment")
@blp.alt_response(400, description="Not an object, or a field that cannot be set")
@blp.alt_response(404, description="No such experiment")
def update_experiment(experiment_id: str) -> Any:
    """Set top-level fields of an experiment (notes, scores, custom fields)."""
    fields = json_object()
    for name in fields:
        if not name or name.startswith("$") or "." in name or "\0" in name:
            raise BadRequest(
                f"Field name {name!r} is not allowed; use a plain name without '.' or '$'"
            )
        if not user_writable(name):
            raise BadRequest(
                f"Field {name} is kept by FGLab and cannot be set; set _notes, _scores, "
                "_charts, _tags or a custom name that does not start with '_'"
            )
    if "_tags" in fields:
        try:
            fields["_tags"] = parse_tags(fields["_tags"])
        except TagError as e:
            raise BadRequest(str(e)) from None
    return services().store.set_fields(experiment_id, fields)


@blp.route("/experiments/<experiment_id>", methods=["DELETE"])
@blp.response(200, description="Deleted")
@blp.alt_response(404, description="No such experiment")
def delete_experiment(experiment_id: str) -> Any:
    """Delete an experiment and its files."""
    services().store.delete_experiment(experiment_id)
    return {"status": "Deleted", "_id": experiment_id}


@blp.route("/experiments/<experiment_id>/started", methods=["PUT"])
@blp.response(200, description="The updated experiment")
@blp.alt_response(404, description="No such experiment")
def stamp_started(experiment_id: str) -> Any:
    """Stamp `_started` with the current time."""
    return services().store.set_fields(experiment_id, {"_started": now()})


@blp.route("/experiments/<experiment_id>/finished", methods=["PUT"])
@blp.response(200, description="The updated experiment")
@blp.alt_response(404, description="No such experiment")
def stamp_finished(experiment_id: str) -> Any:
    """Stamp `_finished` with the current time."""
    return services().store.set_fields(experiment_id, {"_finished": now()})


@blp.route("/experiments/<experiment_id>/files", methods=["PUT"])
@blp.doc(**doc_multipart("_files", "Files to store; a name already stored is replaced.", True))
@blp.response(200, description="The experiment's `_files` after the upload")
@blp.alt_response(400, description="No files, or a file over the size limit")
@blp.alt_response(404, description="No such experiment")
def put_files(experiment_id: str) -> Any:
    """Store files with an experiment in GridFS."""
    store = services().store
    experiment = store.get_experiment(experiment_id)
    uploads = [f for f in request.files.getlist("_files") if f.filename]
    if not uploads:
        raise BadRequest("No files uploaded; send them as multipart field '_files'")
    limit = services().settings.max_file_bytes
    names: list[str] = []
    # Check every file before storing any, so a refused upload stores nothing.
    for upload in uploads:
        size = upload.content_length or _stream_size(upload.stream)
        if size > limit:
            raise BadRequest(f"File {upload.filename!r} has {size} bytes; the limit is {limit}")
        filename = PurePath((upload.filename or "").replace("\\", "/")).name
        if not filename or filename in {".", ".."}:
            raise BadRequest(f"File name {upload.filename!r} is not usable")
        names.append(filename)
    for upload, filename in zip(uploads, names, strict=True):
        content_type = upload.mimetype
        if not content_type or content_type == "application/octet-stream":
            content_type = mimetypes.guess_type(filename)[0] or content_type
        store.put_file(experiment, filename, upload.stream, content_type)
    return {"_files": store.get_experiment(experiment["_id"])["_files"]}


@blp.route("/experiments/<experiment_id>/files", methods=["DELETE"])
@blp.response(200, description="How many files were deleted")
@blp.alt_response(404, description="No such experiment")
def delete_files(experiment_id: str) -> Any:
    """Delete an experiment's stored files."""
    store = services().store
    experiment = store.get_experiment(object_id(experiment_id, "Experiment ID"))
    return {"deleted": store.delete_experiment_files(experiment["_id"])}


def _stream_size(stream: Any) -> int:
    position = stream.tell()
    stream.seek(0, 2)
    size = stream.tell()
    stream.seek(position)
    return size


@blp.route("/experiments/<experiment_id>/kill", methods=["POST"])
@blp.response(200, description="The experiment: cancelled, or with a kill request")
@blp.alt_response(404, description="No such experiment")
@blp.alt_response(409, description="The experiment has already ended")
def kill_experiment(experiment_id: str) -> Any:
    """Cancel a waiting experiment or kill a running one (its whole process group)."""
    oid = object_id(experiment_id, "Experiment ID")
    services().store.get_experiment(oid)
    doc = services().scheduler.cancel(oid)
    if doc.get("_status") == Status.CANCELLED and doc.get("_machine_id"):
        services().broker.ask_dispatch()  # its reservation is free for what waits
    return doc
