"""The web pages: each renders its data server-side, escaped; unknown IDs get the 404 page.

Pages are parsed (tests/html.py) and checked element by element, as a reader sees them.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from bs4 import BeautifulSoup, Tag
from bson import ObjectId

from tests.html import classes, facts, find, page, page_data, text, with_text
from tests.integration.api.helpers import (
    EXAMPLE_SCHEMA,
    OPTIONS,
    submit,
    upload_files,
    upload_schema,
)

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 32


@pytest.fixture
def project(client) -> dict[str, Any]:
    response = upload_schema(client, EXAMPLE_SCHEMA, "mnist.json")
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def _experiment(client, project: dict[str, Any], **changes: Any) -> str:
    response = submit(client, project["_id"], {**OPTIONS, **changes})
    assert response.status_code == 201, response.get_json()
    return response.get_json()["_id"]


def stored(db, experiment_id: str, fields: dict[str, Any]) -> None:
    """Write an experiment's fields as a run would have left them (any status)."""
    db["experiments"].update_one({"_id": ObjectId(experiment_id)}, {"$set": fields})


def _page(client, url: str) -> BeautifulSoup:
    response = client.get(url)
    assert response.status_code == 200, response.data[:500]
    assert response.mimetype == "text/html"
    return page(response)


def _machine(store, name: str, *, beat_ago: float | None, **fields: Any) -> None:
    store.upsert_machine(name, {"hostname": name, **fields})
    if beat_ago is not None:
        beat = datetime.now(UTC) - timedelta(seconds=beat_ago)
        store.set_machine_fields(name, {"_heartbeat": beat})


def _badges(scope: Tag) -> list[tuple[str, str]]:
    """(kind, text) of each badge: ("live", "live"), ("drained", "drained")..."""
    return [(classes(badge)[1], text(badge)) for badge in scope.select("span.badge")]


def _cells(table: Tag) -> list[tuple[str, str | None, str]]:
    """(classes, title, text) of each cell of `table`'s body."""
    return [
        (" ".join(classes(cell)), cell.get("title"), text(cell))
        for cell in table.select("tbody td")
    ]


# Home -------------------------------------------------------------------------------


def test_home_lists_projects_and_machines_sorted(client, db, store) -> None:
    for name in ("zeta", "alpha", "mid"):
        assert upload_schema(client, EXAMPLE_SCHEMA, f"{name}.json").status_code == 201
    _machine(store, "gpu-b", beat_ago=2)
    _machine(store, "gpu-a", beat_ago=600)
    _machine(store, "cpu-c", beat_ago=None)

    home = _page(client, "/")

    projects = [text(link) for link in home.select('a[href^="/projects/"]')]
    assert projects == ["alpha", "mid", "zeta"]
    alpha = db["projects"].find_one({"name": "alpha"})
    assert home.find("a", string="alpha")["href"] == f"/projects/{alpha['_id']}"
    machines = [
        (link["href"].removeprefix("/machines/"), classes(link.find_next_sibling("span"))[1])
        for link in home.select('a[href^="/machines/"]')
    ]
    assert machines == [("cpu-c", "silent"), ("gpu-a", "silent"), ("gpu-b", "live")]
    form = find(home, "form#schema-form")
    assert form.find("input", attrs={"name": "schema"}) is not None


def test_home_without_anything_says_what_to_do(client) -> None:
    home = _page(client, "/")

    assert with_text(home, "p", "No projects yet")
    assert with_text(home, "p", "No machines yet")


def test_static_assets_are_served(client) -> None:
    script = client.get("/assets/js/experiment.js")
    style = client.get("/assets/style.css")

    assert script.status_code == 200
    assert b"function experimentPage" in script.data
    assert style.status_code == 200
    assert b".status-running" in style.data
    script.close()
    style.close()


# Project ----------------------------------------------------------------------------


def _attributes(element: Tag, *names: str) -> tuple[str | None, ...]:
    return tuple(element.get(name) for name in names)


def test_project_form_has_every_field_with_its_default(client, project) -> None:
    project_page = _page(client, f"/projects/{project['_id']}")

    assert next(project_page.h1.strings).strip() == "mnist"
    form = find(project_page, "form#experiment-form")

    def field(name: str) -> Tag:
        return find(form, f'input[name="{name}"]')

    number = ("type", "data-type", "step", "value")
    assert _attributes(field("seed"), *number) == ("number", "int", "1", "123")
    assert _attributes(field("batchSize"), *number) == ("number", "int", "1", "128")
    assert _attributes(field("learningRate"), *number) == ("number", "float", "any", "0.001")
    assert _attributes(field("model"), "type", "data-type", "value") == (
        "text",
        "string",
        "cnn.v2",
    )
    radios = form.find_all("input", attrs={"type": "radio", "name": "L2"})
    assert {radio["value"]: radio.has_attr("checked") for radio in radios} == {
        "true": True,
        "false": False,
    }
    options = {
        option["value"]: (option.has_attr("selected"), text(option))
        for option in find(form, 'select[name="optimiser"]').find_all("option")
    }
    assert options["adam"] == (True, "adam")
    assert options["sgd"] == (False, "sgd")
    # The optimisation form: one row per option, enums and bools as checkboxes.
    search = find(project_page, "form#search-form")
    assert len(search.select(".search-field")) == len(EXAMPLE_SCHEMA)
    assert find(search, 'input[type="checkbox"][data-value="adam"]').has_attr("checked")
    assert project_page.find("input", attrs={"name": "evaluations"}) is not None


def test_project_page_data_keeps_the_schema_order(client, project) -> None:
    data = page_data(_page(client, f"/projects/{project['_id']}"))

    assert data["project_id"] == project["_id"]
    assert list(data["schema"]) == list(EXAMPLE_SCHEMA)


def test_project_table_has_scores_options_and_statuses(client, store, db, project) -> None:
    first = _experiment(client, project, seed=123)  # the schema default
    second = _experiment(client, project, seed=9)
    store.set_fields(first, {"_scores": {"F1": 0.875, "BLEU": 31.5}, "_notes": "baseline run"})
    stored(db, second, {"_scores": {"F1": 0.5, "METEOR": 0.25}, "_status": "success"})

    project_page = _page(client, f"/projects/{project['_id']}")

    table = find(project_page, "table#experiments-table")
    headers = [(classes(th)[0], text(th)) for th in table.select("th.score, th.option")]
    assert headers == [
        ("score", "F1"),
        ("score", "BLEU"),
        ("score", "METEOR"),
        *[("option", name) for name in EXAMPLE_SCHEMA],
    ]
    assert table.find("a", href=f"/experiments/{first}") is not None
    assert table.find(attrs={"data-id": second}) is not None
    statuses = {text(span) for span in table.select("span.status")}
    assert statuses == {"queued", "success"}
    for status in statuses:
        assert text(find(table, f"span.status.status-{status}")) == status
    cells = _cells(table)
    for score in ("0.875", "31.5", "0.5", "0.25"):
        assert ("num", None, score) in cells
    assert ("default", "default", "123") in cells
    assert ("", None, "9") in cells
    assert ("notes", "baseline run", "baseline run") in cells  # cut short, whole on hover
    # OPTIONS differ from every default but the changed seed, so L2 false is not muted.
    assert ("", None, "false") in cells


def test_project_page_shows_the_machine_template(client, project) -> None:
    project_page = _page(client, f"/projects/{project['_id']}")

    template = json.loads(find(project_page, "pre.snippet").get_text())
    assert list(template) == [project["_id"]]
    assert {"cwd", "command", "args", "options", "boolean", "capacity", "results"} <= set(
        template[project["_id"]]
    )


def test_project_page_lists_machines_to_add_the_project_to(client, store, project) -> None:
    pid = project["_id"]
    _machine(store, "gpu-b", beat_ago=2)  # live, without it: a button
    _machine(store, "gpu-a", beat_ago=5, projects={pid: {"capacity": 1}})  # live, has it
    _machine(store, "old-box", beat_ago=600, projects={pid: {"capacity": 1}})  # silent, has it
    _machine(store, "gone-box", beat_ago=600, projects={})  # silent, without it: left out
    _machine(store, "cpu-c", beat_ago=1, projects={"0123456789abcdef01234567": {}})

    project_page = _page(client, f"/projects/{pid}")

    machines = find(project_page, "ul.list#add-machines")
    items = []
    for item in machines.find_all("li"):
        link, badge = item.find("a"), item.find("span", class_="badge")
        implements = item.find("span", class_="implements")
        button = item.find("button", class_="add-to-machine")
        if implements is not None:
            assert classes(implements) == ["muted", "implements"]
            assert text(implements) == "implements this project"
        if button is not None:
            assert button["type"] == "button"
            assert re.fullmatch(r"add-message-\d+", button["data-message"])
        items.append(
            (
                link["href"].removeprefix("/machines/"),
                classes(badge)[1],
                "implements" if implements is not None else "",
                button["data-machine"] if button is not None else "",
                text(button).removeprefix("Add to ") if button is not None else "",
            )
        )
    assert items == [
        ("cpu-c", "live", "", "cpu-c", "cpu-c"),
        ("gpu-a", "live", "implements", "", ""),
        ("gpu-b", "live", "", "gpu-b", "gpu-b"),
        ("old-box", "silent", "implements", "", ""),
    ]
    assert project_page.find(string=re.compile("gone-box")) is None
    assert project_page.select('[href="/machines/gone-box"], [data-machine="gone-box"]') == []
    assert find(machines, "#add-message-1")["role"] == "status"
    assert page_data(project_page)["project_id"] == pid


def test_project_page_without_live_machines_says_so(client, store, project) -> None:
    _machine(store, "gone-box", beat_ago=600)

    project_page = _page(client, f"/projects/{project['_id']}")

    assert project_page.find(id="add-machines") is None
    assert project_page.select(".add-to-machine") == []
    assert with_text(project_page, "p", "No live machines")


def test_project_page_escapes_what_people_wrote(client, db, store, project) -> None:
    experiment_id = _experiment(client, project)
    store.set_fields(experiment_id, {"_notes": "<script>alert(1)</script>"})
    assert upload_schema(client, EXAMPLE_SCHEMA, "<i>bold&.json").status_code == 201
    bold = db["projects"].find_one({"name": "<i>bold&"})

    table = _page(client, f"/projects/{project['_id']}")
    bold_page = _page(client, f"/projects/{bold['_id']}")

    # Escaped, the notes are text of their cell, not a script of the page.
    assert [text(script) for script in table.find_all("script") if "alert" in text(script)] == []
    assert text(find(table, "td.notes")) == "<script>alert(1)</script>"
    assert bold_page.find("i") is None
    assert next(bold_page.h1.strings).strip() == "<i>bold&"
    assert page_data(bold_page)["name"] == "<i>bold&"


# Experiment -------------------------------------------------------------------------


def test_experiment_page_shows_everything_stored(client, store, db, project) -> None:
    experiment_id = _experiment(client, project, seed=123)
    response = upload_files(
        client,
        experiment_id,
        (PNG, "loss.png", "image/png"),
        (b"\0\0\0\x18ftypmp42", "run.mp4", "video/mp4"),
        (b"weights", "model.bin", "application/octet-stream"),
    )
    assert response.status_code == 200, response.get_json()
    files = {f["filename"]: str(f["_id"]) for f in response.get_json()["_files"]}
    stored(
        db,
        experiment_id,
        {
            "_status": "fail",
            "_machine_id": "gpu-a",
            "_gpu": 1,
            "_started": datetime(2024, 5, 1, 12, 0, 3, tzinfo=UTC),
            "_finished": datetime(2024, 5, 1, 12, 30, 0, tzinfo=UTC),
            "_exit": {
                "code": 2,
                "signal": None,
                "reason": "exit code 2\n--- last lines of stderr ---\nValueError: bad lr",
            },
            "_scores": {"F1": 0.875},
            "_notes": "Best at epoch 55",
            "_charts": {"data": {"columns": [["a", 1, 2]]}},
            "_result_notes": ["results.json: invalid JSON at line 1; kept as a file"],
            "Framework": {"Name": "Theano", "Version Number": 0.7},
        },
    )

    experiment_page = _page(client, f"/experiments/{experiment_id}")

    assert text(find(experiment_page, "h1 code")) == experiment_id
    assert text(find(experiment_page, f'a[href="/projects/{project["_id"]}"]')) == "mnist"
    status = find(experiment_page, "#status")
    assert (status.name, classes(status), text(status)) == (
        "span",
        ["status", "status-fail"],
        "fail",
    )
    assert experiment_page.find(id="kill") is None  # an ended experiment cannot be killed
    rows = facts(experiment_page)
    assert "code 2" in text(rows["Exit"])
    assert (
        "--- last lines of stderr ---\nValueError: bad lr"
        in find(rows["Exit"], "pre.reason").get_text()
    )
    assert "2024-05-01 12:00:03" in text(rows["Started"])
    assert "2024-05-01 12:30:00" in text(rows["Finished"])
    machine = find(rows["Machine"], "a")
    assert (machine["href"], text(machine)) == ("/machines/gpu-a", "gpu-a")
    assert text(rows["GPU"]) == "1"
    seed = rows["seed"]
    assert (classes(seed), seed.get("title"), text(seed)) == (["default"], "default", "123")
    assert (classes(rows["model"]), text(rows["model"])) == ([], "cnn.v3")
    notes = find(experiment_page, 'textarea[placeholder="Notes are saved as you type"]')
    assert notes.get_text() == "Best at epoch 55"
    scores = [
        (text(name), classes(value), text(value))
        for name, value in (
            row.find_all("td") for row in experiment_page.select("table.scores tbody tr")
        )
    ]
    assert ("F1", ["num"], "0.875") in scores
    framework = experiment_page.find("h3", string="Framework")
    assert framework is not None
    assert '"Version Number": 0.7' in framework.find_next_sibling("pre").get_text()
    warnings = [text(item) for item in experiment_page.select("ul.warnings li")]
    assert "results.json: invalid JSON at line 1; kept as a file" in warnings
    image = find(experiment_page, f'img[src="/api/v1/files/{files["loss.png"]}"]')
    assert image["alt"] == "loss.png"
    video = find(experiment_page, f'video[src="/api/v1/files/{files["run.mp4"]}"]')
    assert video.has_attr("controls")
    for name, file_id in files.items():
        link = find(experiment_page, f'a[href="/api/v1/files/{file_id}"][download]')
        assert (link["download"], text(link)) == (name, name)
    assert experiment_page.find(id="logs") is not None
    data = page_data(experiment_page)
    assert data == {
        "experiment_id": experiment_id,
        "status": "fail",
        "ended": True,
        "has_charts": True,
        "resource_charts": [],  # no telemetry was recorded for it
    }


def test_running_experiment_has_a_kill_button_and_no_charts(client, project) -> None:
    experiment_id = _experiment(client, project)

    experiment_page = _page(client, f"/experiments/{experiment_id}")

    status = find(experiment_page, "#status")
    assert (status.name, classes(status), text(status)) == (
        "span",
        ["status", "status-queued"],
        "queued",
    )
    assert experiment_page.find(id="kill") is not None
    assert find(experiment_page, "section#charts-section").has_attr("hidden")
    assert with_text(experiment_page, "p", "No files.")
    assert page_data(experiment_page)["has_charts"] is False


def test_large_custom_field_is_not_inlined(client, store, project) -> None:
    experiment_id = _experiment(client, project)
    ref = {"_fglab_large": ObjectId(), "bytes": 3_000_000}
    store.set_fields(experiment_id, {"history": ref})

    experiment_page = _page(client, f"/experiments/{experiment_id}")

    assert with_text(
        experiment_page, "pre", "a large value, 3,000,000 bytes of JSON, kept in GridFS"
    )


def test_experiment_of_a_deleted_project_still_renders(client, db, project) -> None:
    experiment_id = _experiment(client, project)
    db["projects"].delete_one({"_id": ObjectId(project["_id"])})

    experiment_page = _page(client, f"/experiments/{experiment_id}")

    assert "(deleted)" in text(find(experiment_page, "p.crumbs"))
    assert text(facts(experiment_page)["model"]) == "cnn.v3"


# Machine ----------------------------------------------------------------------------


def test_machine_page_shows_specs_projects_and_current_experiments(
    client, store, db, project
) -> None:
    _machine(
        store,
        "gpu-a",
        beat_ago=1,
        address="10.0.0.7",
        os={"type": "Linux", "platform": "linux", "arch": "x64", "release": "6.1.0"},
        cpus=["AMD EPYC 7742"] * 4,
        mem="251.80GB",
        gpus=["NVIDIA H100 80GB HBM3"],
        gpu_details=[
            {
                "index": 0,
                "name": "NVIDIA H100 80GB HBM3",
                "memory_total": 85 * 2**30,
                "memory_used": 2**30,
            }
        ],
        projects={
            project["_id"]: {
                "capacity": 0.5,
                "gpu_capacity": 0.25,
                "options": "double-dash",
                "boolean": "mandatory",
                "timeout": None,
            },
            "0123456789abcdef01234567": {"capacity": 1, "options": "plain"},
        },
        projects_error="projects.json: project 'x' has capacity 1.5; use a number in (0, 1]",
        drained=True,
    )
    running = _experiment(client, project)
    finished = _experiment(client, project)
    stored(db, running, {"_status": "running", "_machine_id": "gpu-a", "_gpu": 0})
    stored(db, finished, {"_status": "success", "_machine_id": "gpu-a"})

    machine_page = _page(client, "/machines/gpu-a")

    assert next(machine_page.h1.strings).strip() == "gpu-a"
    assert ("live", "live") in _badges(machine_page)
    assert ("drained", "drained") in _badges(machine_page)
    rows = facts(machine_page)
    assert text(rows["Address"]) == "10.0.0.7"
    assert text(rows["OS"]) == "Linux 6.1.0 (linux, x64)"
    assert text(rows["CPUs"]) == "4 x AMD EPYC 7742"
    assert text(rows["Memory"]) == "251.80GB"
    assert text(rows["GPUs"]) == "1: NVIDIA H100 80GB HBM3"
    gpu_details = machine_page.find("h3", string="GPU details").find_next_sibling("table")
    assert ("num", None, "85.0 GiB") in _cells(gpu_details)
    link = find(machine_page, f'a[href="/projects/{project["_id"]}"]')
    assert text(link) == "mnist"
    capacities = link.find_parent("tr").find_all("td")[1:3]
    assert [(classes(cell), text(cell)) for cell in capacities] == [
        (["num"], "0.5"),
        (["num"], "0.25"),
    ]
    assert with_text(machine_page, "span", "(unknown project)")
    assert with_text(machine_page, "pre", "has capacity 1.5; use a number in (0, 1]")
    assert with_text(machine_page, "p", "Capacity frees itself")
    assert machine_page.find("a", href=f"/experiments/{running}") is not None
    assert machine_page.find("a", href=f"/experiments/{finished}") is None


def test_silent_machine_without_heartbeat(client, store) -> None:
    _machine(store, "old-box", beat_ago=None)

    machine_page = _page(client, "/machines/old-box")

    assert ("silent", "silent") in _badges(machine_page)
    assert text(facts(machine_page)["Last heartbeat"]) == "never"
    assert with_text(machine_page, "p", "serves no projects")
    assert with_text(machine_page, "p", "None running.")


def test_drained_machine_shows_why_and_a_resume_button(client, store) -> None:
    _machine(
        store,
        "gpu-a",
        beat_ago=1,
        gpus=["H100", "H100"],
        gpu_details=[{"index": 0, "name": "H100"}, {"index": 1, "name": "H100"}],
        gpu_busy=[1],
        drained=True,
        drain_reason="3 experiments failed to start within 60s; last: <no python>",
    )

    machine_page = _page(client, "/machines/gpu-a")

    resume = find(machine_page, "#resume")
    assert (resume.name, resume["type"], text(resume)) == ("button", "button", "Resume")
    assert machine_page.find(id="drain") is None
    reason = find(machine_page, "#drain-reason")
    assert (reason.name, classes(reason), reason.get_text()) == (
        "pre",
        ["reason"],
        "3 experiments failed to start within 60s; last: <no python>",
    )
    busy_gpus = facts(machine_page)["Busy GPUs"]
    assert busy_gpus["id"] == "gpu-busy"
    assert next(busy_gpus.strings).strip() == "1"
    assert classes(busy_gpus.find("span")) == ["muted"]
    gpu_details = machine_page.find("h3", string="GPU details").find_next_sibling("table")
    busy = [
        (next(row.td.strings).strip(), row.td.find("span", class_="badge busy") is not None)
        for row in gpu_details.select("tbody tr")
    ]
    assert busy == [("0", False), ("1", True)]
    assert find(machine_page, "#drain-message")["role"] == "status"
    assert page_data(machine_page) == {"machine_id": "gpu-a", "drained": True, "gpu_charts": []}


def test_open_machine_has_a_drain_button_and_no_busy_gpus(client, store) -> None:
    _machine(store, "gpu-b", beat_ago=1, gpu_busy=[], drain_reason=None)

    machine_page = _page(client, "/machines/gpu-b")

    assert find(machine_page, "#drain-reason-input")["placeholder"] == "Reason (optional)"
    drain = find(machine_page, "#drain")
    assert (drain.name, drain["type"], classes(drain), text(drain)) == (
        "button",
        "button",
        ["danger"],
        "Drain",
    )
    assert machine_page.find(id="resume") is None
    assert machine_page.find(id="drain-reason") is None
    assert "Busy GPUs" not in facts(machine_page)
    assert page_data(machine_page) == {"machine_id": "gpu-b", "drained": False, "gpu_charts": []}


def test_draining_through_the_api_shows_on_the_page(client, store) -> None:
    _machine(store, "gpu-c", beat_ago=1)

    response = client.post("/api/v1/machines/gpu-c/drain", json={"reason": "disk swap"})
    assert response.status_code == 200, response.get_json()
    machine_page = _page(client, "/machines/gpu-c")

    assert ("drained", "drained") in _badges(machine_page)
    reason = find(machine_page, "#drain-reason")
    assert (reason.name, classes(reason), text(reason)) == ("pre", ["reason"], "disk swap")
    assert machine_page.find(id="resume") is not None


def test_machine_script_is_wired(client) -> None:
    source = ""
    for module in ("main.js", "machine.js", "project.js"):
        script = client.get(f"/assets/js/{module}")
        source += script.get_data(as_text=True)
        script.close()
    assert "function machinePage" in source
    assert "machine: machinePage" in source
    for route in ("/drain`", "/resume`", "/projects/${project}`"):
        assert route in source


# Not found --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            "/projects/0123456789abcdef01234567",
            "Project ID 0123456789abcdef01234567 does not exist",
        ),
        ("/projects/not-an-id", "Project ID not-an-id does not exist"),
        (
            "/experiments/0123456789abcdef01234567",
            "Experiment ID 0123456789abcdef01234567 does not exist",
        ),
        ("/experiments/not-an-id", "Experiment ID not-an-id does not exist"),
        ("/machines/nobody", "Machine ID nobody does not exist"),
    ],
)
def test_unknown_ids_get_the_404_page(client, url: str, message: str) -> None:
    response = client.get(url)

    assert response.status_code == 404
    assert response.mimetype == "text/html"
    not_found = page(response)
    assert text(not_found.h1) == "Not found"
    assert message in text(find(not_found, "p.notice"))
