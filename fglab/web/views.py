"""The pages people use: home, project, experiment and machine.

Each view reads the store and shapes plain display values for its template (times as
text, which options are defaults, which files are images); the page's script
(``static/js/``, a module a page) does the rest through the JSON API. Templates
autoescape everything, and data for the script travels as ``<script
type="application/json">`` blocks. An unknown or malformed ID answers the HTML 404 page.
"""

from __future__ import annotations

import json
import logging
import shlex
import time
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from bson import ObjectId
from flask import Blueprint, render_template, request
from jinja2 import Undefined
from redis import RedisError

from fglab.errors import BadRequest, NotFound
from fglab.extensions import services
from fglab.jsonify import to_json_value
from fglab.logs import stderr_tail
from fglab.store import object_id
from fglab.sweeps.driver import SweepDriver
from fglab.table_query import QueryError, TableQuery, parse_ids
from fglab.telemetry import gpu_history_charts, run_charts
from tasks import machines as machine_record
from tasks.contract import PROJECT_TEMPLATE
from tasks.fields import is_large_ref
from tasks.ledger import Usage
from tasks.states import TERMINAL, Status

logger = logging.getLogger(__name__)

#: The table's first page, rendered with the page; the script pages on through the API.
FIRST_PAGE = 50
FIRST_SORT = "_created"

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
    counts = store.status_counts()
    projects = [
        {
            "project": p,
            "counts": _ordered_counts(counts.get(p["_id"], {})),
            "total": sum(counts.get(p["_id"], {}).values()),
        }
        for p in store.projects.all()
    ]
    machines = [
        {
            "id": m["_id"],
            "hostname": m.get("hostname") or m["_id"],
            "live": is_live(m),
            "drained": bool(m.get("drained")),
            "capacity": _capacity(m),
        }
        for m in store.list_machines()
    ]
    return render_template("home.html", projects=projects, machines=machines)


@pages.route("/projects/<project_id>")
def project(project_id: str) -> str:
    """The project: its experiments table (first page here, the rest through the table
    API), the submit form (prefilled from `?clone=<experiment ID>`), searches, machines."""
    store = services().store
    project = store.projects.get(project_id)
    schema: dict[str, dict] = project["schema"]
    total, experiments = store.experiment_rows(
        project["_id"], sort=FIRST_SORT, descending=True, limit=FIRST_PAGE
    )
    score_names = store.score_names(project["_id"])
    rows = [_row(doc, schema, score_names) for doc in experiments]
    template = {str(project["_id"]): PROJECT_TEMPLATE}
    counts = store.status_counts(project["_id"]).get(project["_id"], {})
    cloned = _clone_source(project)
    return render_template(
        "project.html",
        project=project,
        schema=schema,
        score_names=score_names,
        rows=rows,
        total=total,
        page_size=FIRST_PAGE,
        status_counts=[(str(s), counts.get(str(s), 0)) for s in Status],
        tag_counts=store.tag_counts(project["_id"]),
        form_values=_form_values(schema, cloned),
        clone_of=request.args.get("clone") if cloned is not None else None,
        machine_template=pretty(template),
        machines=_machines_for(str(project["_id"]), store.list_machines()),
        sweeps=store.sweeps.of_project(project["_id"]),
        page_data={
            "project_id": str(project["_id"]),
            "name": project["name"],
            "schema": schema,
            "score_names": score_names,
            "total": total,
            "page_size": FIRST_PAGE,
            "sort": FIRST_SORT,
            "order": "desc",
        },
    )


@pages.route("/sweeps/<sweep_id>")
def sweep(sweep_id: str) -> str:
    """A sweep: its state and best trial, every trial with its objective, status and
    reason; the script draws the objective per trial, the parallel coordinates of the
    searched options against it, and each trial's reported curve."""
    store = services().store
    try:
        oid = object_id(sweep_id, "Sweep ID")
    except BadRequest:  # not an ObjectId: no such page either
        raise NotFound(f"Sweep ID {sweep_id} does not exist") from None
    view = SweepDriver(services().scheduler).view(oid)
    project = store.projects.get(view["project"])
    objective = view["objective"]
    histories = store.histories([t["experiment"] for t in view["trials"]]) if objective else {}
    trials = [
        {
            "trial": t["trial"],
            "experiment": str(t["experiment"]),
            "objective": t["objective"],
            "status": t["status"],
            "reason": t["reason"],
            "options": t["options"],
            "curve": _curve(histories.get(t["experiment"], []), objective),
        }
        for t in view["trials"]
    ]
    return render_template(
        "sweep.html",
        sweep=view,
        project=project,
        counts=_ordered_counts(view["counts"]),
        page_data={
            "sweep_id": str(view["_id"]),
            "project_id": str(project["_id"]),
            "state": view["state"],
            "objective": objective,
            "space": _searched(project["schema"], view["space"]),
            "points": [
                {"trial": t["trial"], "objective": t["objective"], "status": t["status"]}
                for t in trials
            ],
            "trials": trials,
        },
    )


def _curve(points: list[dict], objective: Mapping[str, Any] | None) -> list[list[float]]:
    """A trial's reported objective as ``[step, value]`` pairs, oldest step first."""
    if objective is None:
        return []
    curve = []
    for point in points:
        value = (point.get("scores") or {}).get(objective["score"])
        if isinstance(value, int | float) and not isinstance(value, bool):
            curve.append([point["step"], value])
    return curve


def _searched(schema: Mapping[str, Mapping], space: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The options a sweep searches, in schema order, each with its type and scale: the
    axes of the parallel coordinates."""
    return [
        {
            "name": name,
            "type": spec.get("type"),
            "log": isinstance(space[name], Mapping) and space[name].get("scale") == "log",
        }
        for name, spec in schema.items()
        if name in space
    ]


@pages.route("/projects/<project_id>/compare")
def compare(project_id: str) -> str:
    """Selected experiments side by side: options (differing ones marked) and scores; the
    script overlays their charts series by series."""
    store = services().store
    project = store.projects.get(project_id)
    schema: dict[str, dict] = project["schema"]
    try:
        ids = parse_ids(request.args.getlist("ids"))
    except QueryError as e:
        raise BadRequest(str(e)) from None
    where = TableQuery(ids=ids).to_mongo(project["_id"])
    _, found = store.experiment_rows(project["_id"], where=where, limit=0)
    by_id = {str(doc["_id"]): doc for doc in found}
    docs = [by_id[str(i)] for i in dict.fromkeys(ids) if str(i) in by_id]
    score_names = _score_names(docs)
    options = []
    for name, spec in schema.items():
        values = [_dict_field(doc, "_options").get(name) for doc in docs]
        shown = [(show(v), _is_default(v, spec)) for v in values]
        options.append((name, shown, len({json.dumps(v, default=str) for v in values}) > 1))
    scores = [
        (name, [show(_dict_field(doc, "_scores").get(name)) for doc in docs])
        for name in score_names
    ]
    return render_template(
        "compare.html",
        project=project,
        experiments=[
            {
                "id": str(doc["_id"]),
                "status": str(doc.get("_status", "")),
                "duration": duration_text(doc.get("_started"), doc.get("_finished")),
            }
            for doc in docs
        ],
        options=options,
        scores=scores,
        missing=[str(i) for i in ids if str(i) not in by_id],
        page_data={"ids": [str(doc["_id"]) for doc in docs]},
    )


@pages.route("/experiments/<experiment_id>")
def experiment(experiment_id: str) -> str:
    store = services().store
    try:
        doc = store.get_experiment(experiment_id)
    except BadRequest:  # not an ObjectId: no such page either
        raise NotFound(f"Experiment ID {experiment_id} does not exist") from None
    try:
        project = store.projects.get(doc.get("_project_id"))
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
        failure=_failure(doc, status, exit_info),
        queue_position=store.queue_position(doc) if status == Status.QUEUED else None,
        resources=_dict_field(doc, "_resources"),
        code=_code_shown(doc),
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
            "resource_charts": run_charts(doc.get("_resource_samples") or []),
        },
    )


#: The statuses whose page opens with why the run ended and its last lines of stderr.
FAILED = frozenset({Status.FAIL, Status.LOST, Status.TIMEOUT})
#: Where the runner puts the stderr tail in a failed run's ``_exit.reason``.
STDERR_MARK = "\n--- last lines of stderr ---\n"


def _failure(doc: dict[str, Any], status: str, exit_info: Mapping[str, Any]) -> dict | None:
    """Why a failed, lost or timed-out run ended and its stderr tail; None for others.

    A failed run's reason already carries the tail (the runner adds it); for the others
    it is read from the log.
    """
    if status not in FAILED:
        return None
    reason = str(exit_info.get("reason") or f"the experiment ended {status}")
    reason, _, tail = reason.partition(STDERR_MARK)
    if not tail:
        tail = stderr_tail(services().redis, services().store, doc)
    return {"status": status, "reason": reason, "stderr": tail}


@pages.route("/machines/<machine_id>")
def machine(machine_id: str) -> str:
    store = services().store
    doc = store.get_machine(machine_id)
    names = {str(p["_id"]): p["name"] for p in store.projects.all()}
    projects = _dict_field(doc, "projects")
    running = store.machine_experiments(doc["_id"])
    served = [ObjectId(pid) for pid in projects if ObjectId.is_valid(pid)]
    queued_total, queued = store.queued_for(served, QUEUE_SHOWN)
    return render_template(
        "machine.html",
        machine=doc,
        live=is_live(doc),
        cpus=_cpu_summary(doc.get("cpus")),
        gpu_details=[g for g in doc.get("gpu_details") or [] if isinstance(g, dict)],
        gpu_busy=_gpu_busy(doc.get("gpu_busy")),
        projects=[(pid, names.get(pid), impl) for pid, impl in projects.items()],
        experiments=[{**e, "project_name": names.get(str(e.get("_project_id")))} for e in running],
        ledger=_ledger(doc, {str(e["_id"]): e for e in running}, names),
        waiting=[e for e in running if e.get("_status") == Status.DISPATCHED],
        queued=[{**e, "project_name": names.get(str(e.get("_project_id")))} for e in queued],
        queued_total=queued_total,
        flower_url=services().settings.flower_url,
        gpu_down=[str(i) for i in doc.get("gpu_down") or []],
        page_data={
            "machine_id": doc["_id"],
            "drained": bool(doc.get("drained")),
            "gpu_charts": gpu_history_charts(store.machine_gpu_history(doc["_id"])),
        },
    )


@pages.route("/tokens")
def tokens() -> str:
    """API tokens (make, revoke) and "log out everywhere"."""
    settings = services().settings
    return render_template(
        "tokens.html",
        tokens=services().store.tokens.all(),
        locked=bool(settings.password),
        session_days=f"{settings.session_days:g}",
    )


#: Queued experiments a machine page lists at most.
QUEUE_SHOWN = 50


def _ledger(
    machine: Mapping[str, Any], running: Mapping[str, Mapping[str, Any]], names: Mapping[str, str]
) -> dict[str, Any] | None:
    """The machine's ledger now: CPU and each GPU's use, each lease with its experiment and
    expiry. None when the ledger (Redis) cannot be read."""
    usage = _usage(machine)
    ledger = services().scheduler.ledger
    if usage is None or ledger is None:
        return None
    try:
        expiries = ledger.expiries(machine["_id"])
    except RedisError:
        expiries = {}
    leases = []
    for lease in usage.leases:
        experiment = running.get(lease.owner, {})
        expires = expiries.get(lease.owner)
        leases.append(
            {
                "owner": lease.owner,
                "cpu": lease.cpu,
                "gpu": lease.gpu,
                "gpu_share": lease.gpu_share,
                "status": experiment.get("_status"),
                "project_name": names.get(str(experiment.get("_project_id"))),
                "expires": None if expires is None else datetime.fromtimestamp(expires, UTC),
                # By this server's clock; the expiry itself is by Redis' clock.
                "expires_in": None if expires is None else max(0, round(expires - time.time())),
            }
        )
    return {
        "cpu_used": usage.cpu_used,
        "cpu_free": usage.cpu_free,
        "gpus": [
            {
                "index": index,
                "used": used,
                "slots": sum(1 for lease in usage.leases if lease.gpu == index),
            }
            for index, used in enumerate(usage.gpu_used)
        ],
        "leases": leases,
    }


def _usage(machine: Mapping[str, Any]) -> Usage | None:
    """The machine's ledger usage, or None without a readable ledger (no Redis)."""
    ledger = services().scheduler.ledger
    if ledger is None:
        return None
    try:
        return ledger.usage(machine["_id"], _gpu_count(machine))
    except RedisError as error:
        logger.warning("ledger unreadable for machine %s: %s", machine["_id"], error)
        return None


def _capacity(machine: Mapping[str, Any]) -> dict[str, Any] | None:
    """Free CPU capacity and free share of each GPU, for the home page."""
    usage = _usage(machine)
    if usage is None:
        return None
    return {
        "cpu_free": usage.cpu_free,
        "gpu_free": [max(0.0, 1 - used) for used in usage.gpu_used],
        "running": len(usage.leases),
    }


def _gpu_count(machine: Mapping[str, Any]) -> int:
    count = machine.get("gpu_count")
    if isinstance(count, int) and not isinstance(count, bool) and count >= 0:
        return count
    gpus = machine.get("gpus")
    return len(gpus) if isinstance(gpus, list) else 0


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


@pages.app_template_filter("figure")
def figure(value: object) -> str:
    """A measured number to 6 significant digits (3.111111111 reads 3.11111); else `show`."""
    if isinstance(value, float):
        return f"{value:.6g}"
    return show(value)


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


def _code_shown(doc: Mapping[str, Any]) -> dict[str, Any]:
    """``_code`` as the page shows it: the command line quoted as a shell would take it."""
    code = _dict_field(doc, "_code")
    command = code.get("command")
    if isinstance(command, list):
        code = {**code, "command": shlex.join(str(arg) for arg in command)}
    return code


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
        "duration": duration_text(doc.get("_started"), doc.get("_finished")),
        "notes": show(doc.get("_notes")),
        "tags": _tags(doc),
    }


def _tags(doc: Mapping[str, Any]) -> list[str]:
    tags = doc.get("_tags")
    return [str(tag) for tag in tags] if isinstance(tags, list) else []


def duration_text(started: object, finished: object) -> str:
    """``1h 02m 03s`` from start to finish; empty unless both are times."""
    if not isinstance(started, datetime) or not isinstance(finished, datetime):
        return ""
    seconds = max(0, int(_utc(finished).timestamp() - _utc(started).timestamp()))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m {seconds:02d}s"
    return f"{minutes}m {seconds:02d}s" if minutes else f"{seconds}s"


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _ordered_counts(counts: Mapping[str, int]) -> list[tuple[str, int]]:
    """(status, count) for the statuses present, in the status graph's order."""
    known = [(str(s), counts[str(s)]) for s in Status if counts.get(str(s))]
    return known + sorted((s, n) for s, n in counts.items() if s not in set(Status) and n)


def _clone_source(project: Mapping[str, Any]) -> dict[str, Any] | None:
    """The options of the experiment named by ``?clone=`` when it is of this project."""
    wanted = request.args.get("clone")
    if not wanted or not ObjectId.is_valid(wanted):
        return None
    try:
        doc = services().store.get_experiment(wanted, ("_project_id", "_options"))
    except NotFound:
        return None
    if doc.get("_project_id") != project["_id"]:
        return None
    return _dict_field(doc, "_options")


def _form_values(
    schema: Mapping[str, Mapping[str, Any]], options: Mapping[str, Any] | None
) -> dict[str, Any]:
    """What the submit form starts with: a cloned experiment's options, else the defaults."""
    values = {name: spec.get("default") for name, spec in schema.items()}
    if options:
        values.update({name: options[name] for name in schema if name in options})
    return values


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
