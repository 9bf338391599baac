"""Sweeps: grid, random and Bayesian searches as tracked objects, with early stopping."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from fglab.api.bodies import doc_body, json_object
from fglab.api.downloads import download
from fglab.csv_export import csv_lines, json_array
from fglab.errors import BadRequest, NotFound
from fglab.extensions import services
from fglab.store import object_id
from fglab.sweeps.config import SweepError
from fglab.sweeps.driver import SweepDriver
from fglab.sweeps.trials import export_rows, score_names

blp = Blueprint("sweeps", __name__, url_prefix="/api/v1", description="Sweeps")

EXAMPLE_SWEEP = {
    "method": "bayes",
    "space": {
        "learningRate": {"min": 0.0001, "max": 0.1, "scale": "log", "base": 10},
        "optimiser": {"values": ["sgd", "adam"]},
    },
    "objective": {"score": "loss", "goal": "minimize"},
    "budget": 40,
    "parallelism": 4,
    "seed": 1,
    "prune": {"pruner": "median", "n_startup_trials": 5, "n_warmup_steps": 5},
}


def _driver() -> SweepDriver:
    return SweepDriver(services().scheduler)


@blp.route("/projects/<project_id>/sweeps", methods=["POST"])
@blp.doc(
    **doc_body(
        "`method` grid, random or bayes; `space` as the search route's spec (numbers "
        "{min, max (exclusive), steps, scale linear|log, base}, strings/enums/bools "
        "{values}; a field left out keeps its default); `objective` {score: a `_scores` "
        "key, goal: minimize|maximize}, needed by bayes and pruning; `budget` trials "
        "(grid: the grid's size when left out); `parallelism` trials at once (1); "
        "`seed`; `priority` (-1000..1000, 0: its trials queue as experiments of that "
        "priority do); `tags` (a list, every trial's `_tags`); `prune` {pruner: median "
        "(n_startup_trials, n_warmup_steps, "
        "interval_steps, n_min_trials) | hyperband (min_resource, max_resource, "
        "reduction_factor)}.",
        EXAMPLE_SWEEP,
    )
)
@blp.response(201, description="The sweep, with its `_id` and first trials")
@blp.alt_response(400, description="A bad space, objective, budget... (the message names it)")
@blp.alt_response(404, description="No such project")
def create_sweep(project_id: str) -> Any:
    """Start a sweep; its trials are queued as slots free, `parallelism` at a time."""
    project = services().store.projects.get(project_id)
    body = json_object()
    try:
        sweep = _driver().create(project, body)
    except SweepError as e:
        raise BadRequest(str(e)) from None
    services().broker.ask_dispatch()
    return sweep, 201


@blp.route("/projects/<project_id>/sweeps", methods=["GET"])
@blp.response(200, description="The project's sweeps, newest first")
@blp.alt_response(404, description="No such project")
def list_sweeps(project_id: str) -> Any:
    """List a project's sweeps, each with its counts and best trial."""
    store = services().store
    project = store.projects.get(project_id)
    driver = _driver()
    return [driver.view(sweep["_id"]) for sweep in store.sweeps.of_project(project["_id"])]


@blp.route("/sweeps/<sweep_id>", methods=["GET"])
@blp.response(200, description="The sweep: state, counts, best and every trial")
@blp.alt_response(404, description="No such sweep")
def get_sweep(sweep_id: str) -> Any:
    """Read a sweep: `state`, `counts` by status, `best` {trial, experiment, options,
    objective}, and `trials` [{trial, experiment, options, objective, status, reason}]."""
    return _driver().view(object_id(sweep_id, "Sweep ID"))


@blp.route("/sweeps/<sweep_id>/pause", methods=["POST"])
@blp.response(200, description="The sweep, paused")
@blp.alt_response(404, description="No such sweep")
@blp.alt_response(409, description="The sweep is not running")
def pause_sweep(sweep_id: str) -> Any:
    """Pause a sweep: no new trials start; running ones finish."""
    return _driver().pause(object_id(sweep_id, "Sweep ID"))


@blp.route("/sweeps/<sweep_id>/resume", methods=["POST"])
@blp.response(200, description="The sweep, running")
@blp.alt_response(404, description="No such sweep")
@blp.alt_response(409, description="The sweep is not paused")
def resume_sweep(sweep_id: str) -> Any:
    """Resume a paused sweep."""
    sweep = _driver().resume(object_id(sweep_id, "Sweep ID"))
    services().broker.ask_dispatch()
    return sweep


@blp.route("/sweeps/<sweep_id>/cancel", methods=["POST"])
@blp.response(200, description="The sweep, cancelled")
@blp.alt_response(404, description="No such sweep")
@blp.alt_response(409, description="The sweep already finished or was cancelled")
def cancel_sweep(sweep_id: str) -> Any:
    """Cancel a sweep: queued trials are cancelled, running ones killed."""
    return _driver().cancel(object_id(sweep_id, "Sweep ID"))


@blp.route("/sweeps/<sweep_id>/experiments.csv", methods=["GET"])
@blp.response(
    200,
    content_type="text/csv",
    description="The sweep's trials by number, one line each: `trial`, then the project "
    "export's columns (`_id`, `status`, options, scores, `duration`), then `reason`",
)
@blp.alt_response(404, description="No such sweep")
def sweep_experiments_csv(sweep_id: str) -> Any:
    """Export a sweep's experiments as CSV."""
    sweep, project, rows = _export(sweep_id)
    lines = csv_lines(
        rows, list(project["schema"]), score_names(rows), lead=("trial",), tail=("reason",)
    )
    return download(lines, "text/csv", f"{project['name']}-sweep-{sweep['_id']}.csv")


@blp.route("/sweeps/<sweep_id>/experiments.json", methods=["GET"])
@blp.response(
    200,
    content_type="application/json",
    description="The sweep's trials by number as a JSON array: `trial`, `_id`, `_status`, "
    "`_options`, `_scores`, `_started`, `_finished`, `objective`, `reason`",
)
@blp.alt_response(404, description="No such sweep")
def sweep_experiments_json(sweep_id: str) -> Any:
    """Export a sweep's experiments as JSON."""
    sweep, project, rows = _export(sweep_id)
    return download(
        json_array(rows), "application/json", f"{project['name']}-sweep-{sweep['_id']}.json"
    )


def _export(sweep_id: str) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
    store = services().store
    sweep = store.sweeps.get(object_id(sweep_id, "Sweep ID"))
    if sweep is None:
        raise NotFound(f"Sweep ID {sweep_id} does not exist")
    project = store.projects.get(sweep["project"])
    return sweep, project, export_rows(sweep, store.sweep_trials(sweep["_id"]))
