"""The sweep page and its link from the project page, read as documents."""

from __future__ import annotations

from bson import ObjectId

from tasks import history
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


def test_the_sweep_page_carries_curves_axes_exports_and_a_sortable_selectable_table(
    client, db, store
):
    project = new_project(store, EXAMPLE_SCHEMA)
    body = {
        "method": "grid",
        "space": {
            "learningRate": {"min": 0.001, "max": 1, "steps": 3, "scale": "log", "base": 10},
            "optimiser": {"values": ["sgd", "adam"]},
        },
        "parallelism": 2,
        "objective": {"score": "loss", "goal": "minimize"},
    }
    sweep = client.post(f"/api/v1/projects/{project['_id']}/sweeps", json=body).json
    first, second = (ObjectId(t["experiment"]) for t in sweep["trials"])
    history.record(db, first, 2, {"loss": 0.9})
    history.record(db, first, 1, {"loss": 1.5, "acc": 0.1})
    history.record(db, second, 1, {"acc": 0.2})  # no objective at that step
    db["experiments"].update_one(
        {"_id": second},
        {"$set": {"_status": "pruned", "_scores": {"loss": 3.0}, "_exit": {"reason": "slow"}}},
    )

    doc = page(client.get(f"/sweeps/{sweep['_id']}"))
    data = page_data(doc)
    assert data["project_id"] == str(project["_id"])
    assert data["space"] == [
        {"name": "optimiser", "type": "enum", "log": False},
        {"name": "learningRate", "type": "float", "log": True},
    ]
    by_trial = {t["trial"]: t for t in data["trials"]}
    assert by_trial[0]["curve"] == [[1, 1.5], [2, 0.9]]
    assert by_trial[1]["curve"] == []
    assert (by_trial[1]["status"], by_trial[1]["reason"], by_trial[1]["objective"]) == (
        "pruned", "slow", 3.0,
    )  # fmt: skip
    assert by_trial[0]["options"]["optimiser"] == "sgd"
    assert find(doc, "[data-testid=parallel-coordinates]")
    assert find(doc, "[data-testid=trial-curves]")
    keys = [th["data-sort-key"] for th in doc.select("#trials th[data-sort-key]")]
    assert keys == ["trial", "status", "objective", "reason"]
    boxes = doc.select("#trials .select-trial")
    assert [box["data-id"] for box in boxes] == [str(first), str(second)]
    assert find(doc, "#compare-trials").has_attr("disabled")
    csv_link = find(doc, "[data-testid=export-sweep-csv]")["href"]
    json_link = find(doc, "[data-testid=export-sweep-json]")["href"]
    assert csv_link == f"/api/v1/sweeps/{sweep['_id']}/experiments.csv"
    assert json_link == f"/api/v1/sweeps/{sweep['_id']}/experiments.json"
    assert client.get(csv_link).status_code == 200


def test_the_project_page_has_a_sweep_form_with_the_space_and_the_score_names(client, db, store):
    project = new_project(store, EXAMPLE_SCHEMA)
    client.post(
        f"/api/v1/projects/{project['_id']}/experiment?queue=true",
        json={name: spec["default"] for name, spec in EXAMPLE_SCHEMA.items()},
    )
    db["experiments"].update_many({}, {"$set": {"_scores": {"accuracy": 0.5, "loss": 1.0}}})

    doc = page(client.get(f"/projects/{project['_id']}"))
    form = find(doc, "[data-testid=sweep-form]")
    rows = [row["data-name"] for row in form.select(".search-field")]
    assert rows == list(EXAMPLE_SCHEMA)
    methods = [radio["value"] for radio in form.select("[name=sweep-method]")]
    assert methods == ["grid", "random", "bayes"]
    assert find(form, "#sweep-objective")["value"] == "accuracy"
    assert [o["value"] for o in form.select("#score-names option")] == ["accuracy", "loss"]
    assert [o["value"] for o in form.select("#sweep-pruner option")] == ["", "median", "hyperband"]
    assert {i["data-prune"] for i in form.select("[data-prune]")} == {
        "n_startup_trials", "n_warmup_steps", "interval_steps", "min_resource",
        "max_resource", "reduction_factor",
    }  # fmt: skip
    assert find(doc, "[data-testid=export-json]")["href"].startswith(
        f"/api/v1/projects/{project['_id']}/experiments.json?"
    )


def test_the_compare_page_names_its_experiments_for_the_charts_overlay(client, db, store):
    project = new_project(store, EXAMPLE_SCHEMA)
    ids = []
    for seed in (1, 2):
        answer = client.post(
            f"/api/v1/projects/{project['_id']}/experiment?queue=true",
            json={**{n: s["default"] for n, s in EXAMPLE_SCHEMA.items()}, "seed": seed},
        )
        ids.append(answer.json["_id"])

    doc = page(client.get(f"/projects/{project['_id']}/compare?ids={','.join(ids)}"))
    assert page_data(doc) == {"ids": ids}
    assert find(doc, "[data-testid=compare-charts]")
