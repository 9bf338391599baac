"""The pages people use: home, project, experiment and machine.

Each view reads the store and shapes plain display values for its template (times as
text, which options are defaults, which files are images); ``static/app.js`` does the
rest through the JSON API. Templates autoescape everything, and data for the script
travels as ``<script type="application/json">`` blocks. An unknown or malformed ID
answers the HTML 404 page.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from bson import ObjectId
from flask import Blueprint, render_template
from jinja2 import Undefined

from fglab.errors import BadRequest, NotFound
from fglab.extensions import services
from fglab.jsonify import to_json_value
from tasks import machines as machine_record
from tasks.contract import PROJECT_TEMPLATE
from tasks.fields import is_large_ref
from tasks.states import TERMINAL

pages = Blueprint(
    "pages",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/assets",
)


@pages.errorhandler(NotFound)
def _not_found(error: NotFound) -> Any:
    return render_template("not_found.html", message=error.message), 404


@pages.app_template_filter("when")
def when(value: object) -> str:
    """A stored time as ``2024-05-01 12:00:03`` (UTC); anything else as text."""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return show(value)


def show(value: object) -> str:
    """A value as a person reads it in a table cell: JSON spelling, no quotes on strings."""
    if value is None or isinstance(value, Undefined):
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, datetime):
        return when(value)
    if isinstance(value, ObjectId):
        return str(value)
    return json.dumps(value, default=to_json_value, ensure_ascii=False)


def pretty(value: object) -> str:
    """A value as indented JSON, for custom fields."""
    return json.dumps(value, default=to_json_value, ensure_ascii=False, indent=2)


# Pages ------------------------------------------------------------------------------


@pages.route("/")
def home() -> str:
    store = services().store
    machines = [
        {"id": m["_id"], "hostname": m.get("hostname") or m["_id"], "live": is_live(m)}
        for m in store.list_machines()
    ]
    return render_template("home.html", projects=store.list_projects(), machines=machines)


@pages.route("/projects/<project_id>")
def project(project_id: str) -> str:
    store = services().store
    project = store.get_project(project_id)
    schema: dict[str, dict] = project["schema"]
    _, experiments = store.experiment_rows(project["_id"], limit=0)
    score_names = _score_names(experiments)
    rows = [_row(doc, schema, score_names) for doc in experiments]
    template = {str(project["_id"]): PROJECT_TEMPLATE}
    return render_template(
        "project.html",
        project=project,
        schema=schema,
        score_names=score_names,
        rows=rows,
        machine_template=pretty(template),
        machines=_machines_for(str(project["_id"]), store.list_machines()),
        page_data={"project_id": str(project["_id"]), "name": project["name"], "schema": schema},
    )


@pages.route("/experiments/<experiment_id>")
def experiment(experiment_id: str) -> str:
    store = services().store
    try:
        doc = store.get_experiment(experiment_id)
    except BadRequest:  # not an ObjectId: no such page either
        raise NotFound(f"Experiment ID {experiment_id} does not exist") from None
    try:
        project = store.get_project(doc.get("_project_id"))
    except NotFound:
        project = None
    schema: Mapping[str, Mapping] = project["schema"] if project else {}
    options = _dict_field(doc, "_options")
    scores = _dict_field(doc, "_scores")
    status = str(doc.get("_status", ""))
    exit_info = _dict_field(doc, "_exit")
    notes = doc.get("_result_notes")
    files = [f for f in doc.get("_files") or [] if isinstance(f, dict) and "_id" in f]
    return render_template(
        "experiment.html",
        doc=doc,
        project=project,
        status=status,
        ended=status in TERMINAL,
        exit_info=exit_info,
        options=[
            (name, show(value), _is_default(value, schema.get(name)))
            for name, value in options.items()
        ],
        scores=[(name, show(value)) for name, value in scores.items()],
        custom=[
            (name, _custom_text(value)) for name, value in doc.items() if not name.startswith("_")
        ],
        result_notes=[show(n) for n in notes] if isinstance(notes, list) else [],
        files=files,
        images=[f for f in files if str(f.get("mimetype") or "").startswith("image/")],
        videos=[f for f in files if str(f.get("mimetype") or "").startswith("video/")],
        page_data={
            "experiment_id": str(doc["_id"]),
            "status": status,
            "ended": status in TERMINAL,
            "has_charts": doc.get("_charts") is not None,
        },
    )


@pages.route("/machines/<machine_id>")
def machine(machine_id: str) -> str:
    store = services().store
    doc = store.get_machine(machine_id)
    names = {str(p["_id"]): p["name"] for p in store.list_projects()}
    projects = _dict_field(doc, "projects")
    running = store.machine_experiments(doc["_id"])
    return render_template(
        "machine.html",
        machine=doc,
        live=is_live(doc),
        cpus=_cpu_summary(doc.get("cpus")),
        gpu_details=[g for g in doc.get("gpu_details") or [] if isinstance(g, dict)],
        gpu_busy=_gpu_busy(doc.get("gpu_busy")),
        projects=[(pid, names.get(pid), impl) for pid, impl in projects.items()],
        experiments=[{**e, "project_name": names.get(str(e.get("_project_id")))} for e in running],
        page_data={"machine_id": doc["_id"], "drained": bool(doc.get("drained"))},
    )


# Helpers ----------------------------------------------------------------------------


def is_live(machine: Mapping[str, Any]) -> bool:
    """Whether the machine is live, as the scheduler and the sweep see it."""
    return machine_record.is_live(machine, services().settings)


def gib(value: object) -> str:
    """Bytes as ``79.6 GiB``; anything else as text."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value / 2**30:.1f} GiB"
    return show(value)


pages.add_app_template_filter(gib, "gib")
pages.add_app_template_filter(show, "show")


def _machines_for(project_id: str, machines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The machines an "Add to machine" button may reach, and those that implement it.

    Live machines without the project get a button; machines that implement it are
    listed (live or silent) without one; silent machines without it are left out, as
    their worker would not receive the template.
    """
    shown = []
    for m in machines:
        projects = _dict_field(m, "projects")
        implements = project_id in projects
        live = is_live(m)
        if implements or live:
            hostname = m.get("hostname") or m["_id"]
            shown.append(
                {"id": m["_id"], "hostname": hostname, "live": live, "implements": implements}
            )
    return shown


def _dict_field(doc: Mapping[str, Any], key: str) -> dict[Any, Any]:
    """``doc[key]`` when it is an object; an empty dict when missing or malformed."""
    value = doc.get(key)
    return value if isinstance(value, dict) else {}


def _gpu_busy(value: object) -> list[str]:
    """The indexes of GPUs held outside the fleet, as text; nothing for a malformed field."""
    if not isinstance(value, list):
        return []
    return [show(index) for index in value]


def _score_names(experiments: list[dict[str, Any]]) -> list[str]:
    """Every score name any experiment has, in order of first appearance."""
    names: dict[str, None] = {}
    for doc in experiments:
        scores = doc.get("_scores")
        if isinstance(scores, dict) and not is_large_ref(scores):
            names.update(dict.fromkeys(scores))
    return list(names)


def _row(doc: dict[str, Any], schema: Mapping[str, Mapping], score_names: list[str]) -> dict:
    options = _dict_field(doc, "_options")
    scores = _dict_field(doc, "_scores")
    return {
        "id": str(doc["_id"]),
        "status": str(doc.get("_status", "")),
        "scores": [show(scores.get(name)) for name in score_names],
        "options": [
            (show(options.get(name)), _is_default(options.get(name), spec))
            for name, spec in schema.items()
        ],
        "started": when(doc.get("_started")),
        "finished": when(doc.get("_finished")),
        "notes": show(doc.get("_notes")),
    }


def _is_default(value: object, spec: Mapping[str, Any] | None) -> bool:
    if spec is None or "default" not in spec:
        return False
    default = spec["default"]
    # True == 1 in Python, but a bool option never equals a number one.
    return isinstance(value, bool) == isinstance(default, bool) and value == default


def _custom_text(value: object) -> str:
    if is_large_ref(value):
        return f"(a large value, {value['bytes']:,} bytes of JSON, kept in GridFS)"
    return pretty(value)


def _cpu_summary(cpus: object) -> str:
    """``16 x AMD EPYC 7742`` from one model string per logical CPU."""
    if not isinstance(cpus, list) or not cpus:
        return show(cpus)
    counts = Counter(str(c) for c in cpus)
    models = ", ".join(f"{n} x {model}" for model, n in counts.items())
    return f"{len(cpus)} ({models})" if len(counts) > 1 else models
