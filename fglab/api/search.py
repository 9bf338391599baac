"""Hyperparameter search: a grid or random batch built from a spec, submitted in one call."""

from __future__ import annotations

import random
from typing import Any

from flask_smorest import Blueprint

from fglab.api.bodies import doc_body, json_object
from fglab.api.params import TAG_PARAMETER, priority_arg, tags_arg
from fglab.errors import BadRequest
from fglab.extensions import services
from fglab.schema import OptionsError, validate_options
from fglab.search import SearchError, grid, random_search

blp = Blueprint("search", __name__, url_prefix="/api/v1", description="Hyperparameter search")

METHODS = ("grid", "random")
BODY_KEYS = frozenset({"method", "spec", "evaluations", "seed"})

EXAMPLE_SEARCH = {
    "method": "random",
    "spec": {
        "learningRate": {"min": 0.0001, "max": 0.1, "scale": "log", "base": 10},
        "optimiser": {"values": ["sgd", "adam"]},
        "L2": {"values": [True, False]},
    },
    "evaluations": 20,
    "seed": 1,
}


@blp.route("/projects/<project_id>/search", methods=["POST"])
@blp.doc(
    **doc_body(
        "`method` grid or random; `spec` per field: numbers {min, max (exclusive), steps, "
        "scale linear|log, base}, strings/enums/bools {values}; a field left out keeps its "
        "default. Random search takes `evaluations` and an optional integer `seed`.",
        EXAMPLE_SEARCH,
    ),
    parameters=[
        {
            "in": "query",
            "name": "priority",
            "schema": {"type": "integer", "default": 0},
            "description": "Priority of every experiment of the search; higher goes first.",
        },
        TAG_PARAMETER,
    ],
)
@blp.response(201, description='{"status": "Started", "_ids": [...], "count": n}')
@blp.alt_response(400, description="A bad body or spec (the message names the field)")
@blp.alt_response(404, description="No such project")
def search(project_id: str) -> Any:
    """Submit a grid or random search; every experiment is queued until a machine takes it."""
    store = services().store
    project = store.projects.get(project_id)
    body = json_object()
    unknown = sorted(set(body) - BODY_KEYS)
    if unknown:
        raise BadRequest(f"Unknown search setting(s) {unknown}; use {', '.join(sorted(BODY_KEYS))}")
    method = body.get("method")
    if method not in METHODS:
        raise BadRequest(f"method is {method!r}; use 'grid' or 'random'")
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise BadRequest(f"seed is {seed!r}; use a whole number, or leave it out")
    schema = project["schema"]
    try:
        if method == "grid":
            option_sets = grid(schema, body.get("spec", {}))
        else:
            option_sets = random_search(
                schema, body.get("spec", {}), body.get("evaluations"), random.Random(seed)
            )
        typed = [validate_options(schema, options) for options in option_sets]
    except (SearchError, OptionsError) as e:
        raise BadRequest(str(e)) from None
    tags = tags_arg()
    ids = services().store.new_experiments(
        project["_id"], typed, extra={"_tags": tags} if tags else None, priority=priority_arg()
    )
    services().broker.ask_dispatch()
    return {"status": "Started", "_ids": ids, "count": len(ids)}, 201
