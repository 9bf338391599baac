"""File downloads from GridFS, with the stored name and content type."""

from __future__ import annotations

from typing import Any

from flask import send_file
from flask_smorest import Blueprint

from fglab.extensions import services
from tasks.files import DEFAULT_CONTENT_TYPE

blp = Blueprint("files", __name__, url_prefix="/api/v1", description="Stored files")


@blp.route("/files/<file_id>", methods=["GET"])
@blp.response(200, description="The file's bytes", content_type="application/octet-stream")
@blp.alt_response(400, description="Not an ObjectId")
@blp.alt_response(404, description="No such file")
def download(file_id: str) -> Any:
    """Download a stored file."""
    grid_out = services().store.open_file(file_id)
    metadata = grid_out.metadata or {}
    content_type = metadata.get("contentType") or DEFAULT_CONTENT_TYPE

    response = send_file(
        grid_out,
        mimetype=content_type,
        as_attachment=True,
        download_name=grid_out.filename or str(file_id),
        etag=False,
        conditional=False,
    )
    response.content_length = grid_out.length
    return response
