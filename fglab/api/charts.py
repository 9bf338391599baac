"""Charts: an experiment's ``_charts`` as C3.js configs, long series downsampled.

This is the one way ``_charts`` reaches a page's ``c3.generate``: what it answers holds
only the settings of FGLab's allow-list (``fglab.chart_sanitizer``), whatever is stored.
"""

from __future__ import annotations

import logging
from typing import Any

from flask_smorest import Blueprint

from fglab.api.params import int_arg
from fglab.charts import ChartError, prepare_charts
from fglab.errors import BadRequest
from fglab.extensions import services

logger = logging.getLogger(__name__)

blp = Blueprint("charts", __name__, url_prefix="/api/v1", description="Experiment charts")

DEFAULT_POINTS = 1000
#: A browser draws a few thousand points per series smoothly; more is asking for trouble.
MAX_POINTS = 100_000


@blp.route("/experiments/<experiment_id>/charts", methods=["GET"])
@blp.doc(
    parameters=[
        {
            "in": "query",
            "name": "points",
            "schema": {"type": "integer", "minimum": 3, "maximum": MAX_POINTS},
            "description": f"Most points per series (LTTB downsampling); default {DEFAULT_POINTS}.",
        }
    ]
)
@blp.response(200, description="A list of C3.js configs, ready for `c3.generate`; [] when none")
@blp.alt_response(400, description="A bad `points`, or `_charts` that cannot be drawn")
@blp.alt_response(404, description="No such experiment")
def get_charts(experiment_id: str) -> Any:
    """Read an experiment's charts as C3.js configs.

    Only the C3 settings FGLab draws come back (data, axes, titles, legends, plain
    colours...); callbacks, templates and unknown settings are left out.
    """
    points = int_arg("points", DEFAULT_POINTS, 3, MAX_POINTS)
    store = services().store
    doc = store.get_experiment(experiment_id)
    if doc.get("_charts") is None:
        return []
    # Only `_charts` is loaded from GridFS, not every other large field of the experiment.
    charts = store.resolve_large_fields({"_id": doc["_id"], "_charts": doc["_charts"]})
    if charts["_charts"] is None:
        return []
    dropped: list[str] = []
    try:
        prepared = prepare_charts(charts["_charts"], max_points=points, dropped=dropped)
    except ChartError as e:
        raise BadRequest(
            f"Experiment {experiment_id} has _charts that cannot be drawn: {e}"
        ) from None
    if dropped:
        logger.warning(
            "Experiment %s: _charts settings left out before they reach a browser: %s",
            experiment_id,
            "; ".join(dropped),
        )
    return prepared
