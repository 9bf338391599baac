"""The sweep page and its link from the project page, read as documents."""

from __future__ import annotations

from bson import ObjectId

from tests.html import find, page, page_data, text
from tests.integration.api.helpers import EXAMPLE_SCHEMA
from tests.integration.fleet import new_project


def test_the_sweep_page_shows_state_trials_and_their_reasons(client, db, store):
    project = new_project(store, EXAMPLE_SCHEMA)
    body = {
        "method": "grid",
        "space": {"batchSize": {"min": 32, "max": 128, "steps": 3}},
        "parallelism": 2,
        "objective": {"score": "loss", "goal": "minimize"},
    }
    sweep = client.post(f"/api/v1/projects/{project['_id']}/sweeps", json=body).json
    first = ObjectId(sweep["trials"][0]["experiment"])
    store.cancel(first)

    doc = page(client.get(f"/sweeps/{sweep['_id']}"))
    assert text(find(doc, "[data-testid=sweep-state]")) == "running"
    rows = doc.select("#trials tbody tr")
    assert [row["data-trial"] for row in rows] == ["0", "1"]
    assert text(find(rows[0], ".reason")) == "cancelled before it started"
    assert text(find(rows[1], ".status")) == "queued"
    data = page_data(doc)
    assert data["objective"] == {"score": "loss", "goal": "minimize"}
    assert [p["trial"] for p in data["points"]] == [0, 1]
    assert doc.select("[data-sweep-action]")

    project_page = page(client.get(f"/projects/{project['_id']}"))
    link = find(project_page, "[data-testid=sweeps] a")
    assert link["href"] == f"/sweeps/{sweep['_id']}"
    assert client.get(f"/sweeps/{ObjectId()}").status_code == 404
