"""Tags: set at submit (one, a batch, a search, a sweep's trials) and by PUT, kept by a
rerun, filtered and counted by the table, exported in the CSV; a bad tag is a 400 that
stores nothing."""

from __future__ import annotations

import csv
import io

import pytest
from bson import ObjectId

from tests.integration.api.helpers import counts, options


def submit(client, project, *tags: str) -> str:
    query = "&".join(f"tag={tag}" for tag in tags)
    answer = client.post(
        f"/api/v1/projects/{project['_id']}/experiment?queue=true&{query}", json=options()
    )
    assert answer.status_code == 201, answer.get_json()
    return answer.get_json()["_id"]


def stored_tags(db, experiment_id) -> list[str] | None:
    return db.experiments.find_one({"_id": ObjectId(experiment_id)}).get("_tags")


def test_every_submission_route_stores_its_tags(client, db, project) -> None:
    one = submit(client, project, "baseline", "paper-v2,baseline")
    assert stored_tags(db, one) == ["baseline", "paper-v2"]  # comma-split, each once

    batch = client.post(
        f"/api/v1/projects/{project['_id']}/batch?tag=b", json=[options(seed=1), options(seed=2)]
    ).get_json()["_ids"]
    search = client.post(
        f"/api/v1/projects/{project['_id']}/search?tag=s",
        json={"method": "grid", "spec": {"seed": {"min": 1, "max": 3, "steps": 2}}},
    ).get_json()["_ids"]
    sweep = client.post(
        f"/api/v1/projects/{project['_id']}/sweeps",
        json={"method": "random", "space": {"seed": {"min": 1, "max": 9}}, "budget": 2,
              "parallelism": 2, "tags": ["sw"]},
    )  # fmt: skip
    assert sweep.status_code == 201, sweep.get_json()
    trials = [t["experiment"] for t in sweep.get_json()["trials"]]

    assert [stored_tags(db, i) for i in batch] == [["b"], ["b"]]
    assert {tuple(stored_tags(db, i)) for i in search} == {("s",)}
    assert [stored_tags(db, i) for i in trials] == [["sw"], ["sw"]]
    assert stored_tags(db, submit(client, project)) is None  # no tags: no field


def test_put_sets_tags_and_a_rerun_keeps_them(client, db, project) -> None:
    experiment_id = submit(client, project, "a")
    answer = client.put(f"/api/v1/experiments/{experiment_id}", json={"_tags": ["x", " y "]})
    assert answer.status_code == 200
    assert stored_tags(db, experiment_id) == ["x", "y"]

    rerun = client.post(f"/api/v1/experiments/{experiment_id}/rerun").get_json()["_id"]
    assert stored_tags(db, rerun) == ["x", "y"]


@pytest.mark.parametrize(
    ("tags", "message"),
    [
        ("x", "tags are 'x'; send a list of strings"),
        ([1], "tag 1 is not a string"),
        (["two words"], "tag 'two words' is not allowed"),
        ([f"t{n}" for n in range(21)], "21 tags given; an experiment has at most 20"),
    ],
)
def test_a_bad_tag_is_a_400_that_stores_nothing(client, db, project, tags, message) -> None:
    experiment_id = submit(client, project)
    before = db.experiments.find_one({"_id": ObjectId(experiment_id)})
    answer = client.put(f"/api/v1/experiments/{experiment_id}", json={"_tags": tags})
    assert answer.status_code == 400
    assert answer.get_json()["error"].startswith(message)
    assert db.experiments.find_one({"_id": ObjectId(experiment_id)}) == before

    stored = counts(db)
    answer = client.post(
        f"/api/v1/projects/{project['_id']}/experiment?queue=true&tag=<b>", json=options()
    )
    assert answer.status_code == 400
    assert "tag '<b>' is not allowed" in answer.get_json()["error"]
    assert counts(db) == stored


def test_the_table_filters_counts_and_exports_tags(client, project) -> None:
    both = submit(client, project, "baseline", "v2")
    baseline = submit(client, project, "baseline")
    submit(client, project)
    url = f"/api/v1/projects/{project['_id']}"

    rows = client.get(f"{url}/experiments/table?tag=baseline").get_json()["rows"]
    assert {row["_id"] for row in rows} == {both, baseline}
    assert rows[0]["_tags"]
    rows = client.get(f"{url}/experiments/table?tag=baseline&tag=v2").get_json()["rows"]
    assert [row["_id"] for row in rows] == [both]  # every tag must hold
    assert client.get(f"{url}/experiments/table?tag=no%20way").status_code == 400

    assert client.get(f"{url}/tags").get_json() == {
        "tags": [{"tag": "baseline", "count": 2}, {"tag": "v2", "count": 1}]
    }

    text = client.get(f"{url}/experiments.csv?tag=baseline&sort=_created").get_data(as_text=True)
    header, *lines = csv.reader(io.StringIO(text))
    column = header.index("tags")
    assert [line[column] for line in lines] == ["baseline,v2", "baseline"]
