"""The web pages: each renders its data server-side, escaped; unknown IDs get the 404 page."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from bson import ObjectId

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


def _page(client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, response.data[:500]
    assert response.mimetype == "text/html"
    return response.get_data(as_text=True)


def _page_data(html: str) -> Any:
    match = re.search(r'<script type="application/json" id="page-data">(.*?)</script>', html, re.S)
    assert match, "page has no page-data block"
    return json.loads(match.group(1))


def _machine(store, name: str, *, beat_ago: float | None, **fields: Any) -> None:
    store.upsert_machine(name, {"hostname": name, **fields})
    if beat_ago is not None:
        beat = datetime.now(UTC) - timedelta(seconds=beat_ago)
        store.set_machine_fields(name, {"_heartbeat": beat})


# Home -------------------------------------------------------------------------------


def test_home_lists_projects_and_machines_sorted(client, store) -> None:
    for name in ("zeta", "alpha", "mid"):
        assert upload_schema(client, EXAMPLE_SCHEMA, f"{name}.json").status_code == 201
    _machine(store, "gpu-b", beat_ago=2)
    _machine(store, "gpu-a", beat_ago=600)
    _machine(store, "cpu-c", beat_ago=None)

    html = _page(client, "/")

    positions = [html.index(f">{name}</a>") for name in ("alpha", "mid", "zeta")]
    assert positions == sorted(positions)
    alpha = store.projects.find_one({"name": "alpha"})
    assert f'href="/projects/{alpha["_id"]}"' in html
    machines = re.findall(
        r'<a href="/machines/([^"]+)">[^<]+</a>\s*<span class="badge (\w+)">', html
    )
    assert machines == [("cpu-c", "silent"), ("gpu-a", "silent"), ("gpu-b", "live")]
    assert 'id="schema-form"' in html
    assert 'name="schema"' in html


def test_home_without_anything_says_what_to_do(client) -> None:
    html = _page(client, "/")

    assert "No projects yet" in html
    assert "No machines yet" in html


def test_static_assets_are_served(client) -> None:
    script = client.get("/assets/app.js")
    style = client.get("/assets/style.css")

    assert script.status_code == 200
    assert b"function experimentPage" in script.data
    assert style.status_code == 200
    assert b".status-running" in style.data
    script.close()
    style.close()


# Project ----------------------------------------------------------------------------


def test_project_form_has_every_field_with_its_default(client, project) -> None:
    html = _page(client, f"/projects/{project['_id']}")

    assert "<h1>mnist" in html
    assert re.search(r'type="number" name="seed" data-type="int"\s+step="1" value="123"', html)
    assert re.search(r'type="number" name="batchSize" data-type="int"\s+step="1" value="128"', html)
    assert re.search(
        r'type="number" name="learningRate" data-type="float"\s+step="any" value="0.001"', html
    )
    assert 'type="text" name="model" data-type="string" value="cnn.v2"' in html
    assert '<input type="radio" name="L2" value="true" checked>' in html
    assert '<input type="radio" name="L2" value="false">' in html
    assert '<option value="adam" selected>adam</option>' in html
    assert '<option value="sgd">sgd</option>' in html
    # The optimisation form: one row per option, enums and bools as checkboxes.
    assert html.count('class="search-field"') == len(EXAMPLE_SCHEMA)
    assert '<input type="checkbox" data-value="adam" checked>' in html
    assert 'name="evaluations"' in html


def test_project_page_data_keeps_the_schema_order(client, project) -> None:
    data = _page_data(_page(client, f"/projects/{project['_id']}"))

    assert data["project_id"] == project["_id"]
    assert list(data["schema"]) == list(EXAMPLE_SCHEMA)


def test_project_table_has_scores_options_and_statuses(client, store, project) -> None:
    first = _experiment(client, project, seed=123)  # the schema default
    second = _experiment(client, project, seed=9)
    store.set_fields(first, {"_scores": {"F1": 0.875, "BLEU": 31.5}, "_notes": "baseline run"})
    store.set_fields(second, {"_scores": {"F1": 0.5, "METEOR": 0.25}, "_status": "success"})

    html = _page(client, f"/projects/{project['_id']}")

    headers = re.findall(r'<th class="(score|option)"[^>]*>([^<]+)</th>', html)
    assert headers == [
        ("score", "F1"),
        ("score", "BLEU"),
        ("score", "METEOR"),
        *[("option", name) for name in EXAMPLE_SCHEMA],
    ]
    assert f'href="/experiments/{first}"' in html
    assert f'data-id="{second}"' in html
    assert '<span class="status status-queued">queued</span>' in html
    assert '<span class="status status-success">success</span>' in html
    for score in ("0.875", "31.5", "0.5", "0.25"):
        assert f'<td class="num">{score}</td>' in html
    assert '<td class="default" title="default">123</td>' in html
    assert "<td>9</td>" in html
    assert '<td class="notes">baseline run</td>' in html
    # OPTIONS differ from every default but the changed seed, so L2 false is not muted.
    assert "<td>false</td>" in html


def test_project_page_shows_the_machine_template(client, project) -> None:
    html = _page(client, f"/projects/{project['_id']}")

    snippet = re.search(r'<pre class="snippet">(.*?)</pre>', html, re.S).group(1)
    template = json.loads(snippet.replace("&#34;", '"'))
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

    html = _page(client, f"/projects/{pid}")

    machines = re.search(r'<ul class="list" id="add-machines">(.*?)</ul>', html, re.S).group(1)
    items = re.findall(
        r'<a href="/machines/([^"]+)">[^<]+</a>\s*<span class="badge (\w+)">\w+</span>\s*'
        r'(?:<span class="muted implements">(implements) this project</span>|'
        r'<button type="button" class="add-to-machine" data-machine="([^"]+)" '
        r'data-message="add-message-\d+">Add to ([^<]+)</button>)',
        machines,
    )
    assert items == [
        ("cpu-c", "live", "", "cpu-c", "cpu-c"),
        ("gpu-a", "live", "implements", "", ""),
        ("gpu-b", "live", "", "gpu-b", "gpu-b"),
        ("old-box", "silent", "implements", "", ""),
    ]
    assert "gone-box" not in html
    assert 'id="add-message-1" role="status"' in machines
    assert _page_data(html)["project_id"] == pid


def test_project_page_without_live_machines_says_so(client, store, project) -> None:
    _machine(store, "gone-box", beat_ago=600)

    html = _page(client, f"/projects/{project['_id']}")

    assert 'id="add-machines"' not in html
    assert "add-to-machine" not in html
    assert "No live machines" in html


def test_project_page_escapes_what_people_wrote(client, store, project) -> None:
    experiment_id = _experiment(client, project)
    store.set_fields(experiment_id, {"_notes": "<script>alert(1)</script>"})
    assert upload_schema(client, EXAMPLE_SCHEMA, "<i>bold&.json").status_code == 201
    bold = store.projects.find_one({"name": "<i>bold&"})

    table = _page(client, f"/projects/{project['_id']}")
    page = _page(client, f"/projects/{bold['_id']}")

    assert "<script>alert(1)</script>" not in table
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in table
    assert "<i>bold" not in page
    assert "&lt;i&gt;bold&amp;" in page
    assert _page_data(page)["name"] == "<i>bold&"


# Experiment -------------------------------------------------------------------------


def test_experiment_page_shows_everything_stored(client, store, project) -> None:
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
    store.set_fields(
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

    html = _page(client, f"/experiments/{experiment_id}")

    assert f"<code>{experiment_id}</code>" in html
    assert f'href="/projects/{project["_id"]}">mnist</a>' in html
    assert '<span class="status status-fail" id="status">fail</span>' in html
    assert 'id="kill"' not in html  # an ended experiment cannot be killed
    assert "code 2" in html
    assert "--- last lines of stderr ---\nValueError: bad lr" in html
    assert "2024-05-01 12:00:03" in html
    assert "2024-05-01 12:30:00" in html
    assert 'href="/machines/gpu-a">gpu-a</a>' in html
    assert "<tr><th>GPU</th><td>1</td></tr>" in html
    assert '<tr><th>seed</th><td class="default" title="default">123</td></tr>' in html
    assert "<tr><th>model</th><td>cnn.v3</td></tr>" in html
    assert 'placeholder="Notes are saved as you type">Best at epoch 55</textarea>' in html
    assert '<tr><td>F1</td><td class="num">0.875</td></tr>' in html
    assert "<h3>Framework</h3>" in html
    assert "&#34;Version Number&#34;: 0.7" in html
    assert "results.json: invalid JSON at line 1; kept as a file" in html
    assert f'<img src="/api/v1/files/{files["loss.png"]}" alt="loss.png"' in html
    assert f'<video src="/api/v1/files/{files["run.mp4"]}" controls' in html
    for name, file_id in files.items():
        assert f'<a href="/api/v1/files/{file_id}" download="{name}">{name}</a>' in html
    assert 'id="logs"' in html
    data = _page_data(html)
    assert data == {
        "experiment_id": experiment_id,
        "status": "fail",
        "ended": True,
        "has_charts": True,
    }


def test_running_experiment_has_a_kill_button_and_no_charts(client, project) -> None:
    experiment_id = _experiment(client, project)

    html = _page(client, f"/experiments/{experiment_id}")

    assert '<span class="status status-queued" id="status">queued</span>' in html
    assert 'id="kill"' in html
    assert '<section id="charts-section" hidden>' in html
    assert "No files." in html
    assert _page_data(html)["has_charts"] is False


def test_large_custom_field_is_not_inlined(client, store, project) -> None:
    experiment_id = _experiment(client, project)
    ref = {"_fglab_large": ObjectId(), "bytes": 3_000_000}
    store.set_fields(experiment_id, {"history": ref})

    html = _page(client, f"/experiments/{experiment_id}")

    assert "a large value, 3,000,000 bytes of JSON, kept in GridFS" in html


def test_experiment_of_a_deleted_project_still_renders(client, store, project) -> None:
    experiment_id = _experiment(client, project)
    store.projects.delete_one({"_id": ObjectId(project["_id"])})

    html = _page(client, f"/experiments/{experiment_id}")

    assert "(deleted)" in html
    assert "<tr><th>model</th><td>cnn.v3</td></tr>" in html


# Machine ----------------------------------------------------------------------------


def test_machine_page_shows_specs_projects_and_current_experiments(client, store, project) -> None:
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
    store.set_fields(running, {"_status": "running", "_machine_id": "gpu-a", "_gpu": 0})
    store.set_fields(finished, {"_status": "success", "_machine_id": "gpu-a"})

    html = _page(client, "/machines/gpu-a")

    assert "<h1>gpu-a" in html
    assert '<span class="badge live">live</span>' in html
    assert '<span class="badge drained">drained</span>' in html
    assert "10.0.0.7" in html
    assert "Linux 6.1.0 (linux, x64)" in html
    assert "4 x AMD EPYC 7742" in html
    assert "251.80GB" in html
    assert "1: NVIDIA H100 80GB HBM3" in html
    assert '<td class="num">85.0 GiB</td>' in html
    assert f'<a href="/projects/{project["_id"]}">mnist</a>' in html
    assert '<td class="num">0.5</td><td class="num">0.25</td>' in html
    assert "(unknown project)" in html
    assert "has capacity 1.5; use a number in (0, 1]" in html
    assert "Capacity frees itself" in html
    assert f'href="/experiments/{running}"' in html
    assert f'href="/experiments/{finished}"' not in html


def test_silent_machine_without_heartbeat(client, store) -> None:
    _machine(store, "old-box", beat_ago=None)

    html = _page(client, "/machines/old-box")

    assert '<span class="badge silent">silent</span>' in html
    assert "never" in html
    assert "serves no projects" in html
    assert "None running." in html


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

    html = _page(client, "/machines/gpu-a")

    assert '<button type="button" id="resume">Resume</button>' in html
    assert 'id="drain"' not in html
    assert (
        '<pre class="reason" id="drain-reason">3 experiments failed to start within 60s; '
        "last: &lt;no python&gt;</pre>"
    ) in html
    assert '<tr><th>Busy GPUs</th><td id="gpu-busy">1 <span class="muted">' in html
    busy = re.findall(r'<tr><td>(\d)( <span class="badge busy")?', html)
    assert busy == [("0", ""), ("1", ' <span class="badge busy"')]
    assert 'id="drain-message" role="status"' in html
    assert _page_data(html) == {"machine_id": "gpu-a", "drained": True}


def test_open_machine_has_a_drain_button_and_no_busy_gpus(client, store) -> None:
    _machine(store, "gpu-b", beat_ago=1, gpu_busy=[], drain_reason=None)

    html = _page(client, "/machines/gpu-b")

    assert 'id="drain-reason-input" placeholder="Reason (optional)"' in html
    assert '<button type="button" id="drain" class="danger">Drain</button>' in html
    assert 'id="resume"' not in html
    assert 'id="drain-reason"' not in html
    assert "Busy GPUs" not in html
    assert _page_data(html) == {"machine_id": "gpu-b", "drained": False}


def test_draining_through_the_api_shows_on_the_page(client, store) -> None:
    _machine(store, "gpu-c", beat_ago=1)

    response = client.post("/api/v1/machines/gpu-c/drain", json={"reason": "disk swap"})
    assert response.status_code == 200, response.get_json()
    html = _page(client, "/machines/gpu-c")

    assert '<span class="badge drained">drained</span>' in html
    assert '<pre class="reason" id="drain-reason">disk swap</pre>' in html
    assert 'id="resume"' in html


def test_machine_script_is_wired(client) -> None:
    script = client.get("/assets/app.js")

    text = script.get_data(as_text=True)
    script.close()
    assert "function machinePage" in text
    assert "machine: machinePage" in text
    for route in ("/drain`", "/resume`", "/projects/${project}`"):
        assert route in text


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
    html = response.get_data(as_text=True)
    assert "<h1>Not found</h1>" in html
    assert message in html
