"""Priorities through the API: `?priority=` on every submit route, moving to the front,
and the experiment page that shows the queue position."""

from __future__ import annotations

from typing import Any

import pytest

from tests.html import find, page, text
from tests.integration.api.helpers import OPTIONS, options


def position(client: Any, experiment_id: str) -> int:
    return client.get(f"/api/v1/experiments/{experiment_id}").get_json()["_queue_position"]


def test_every_submit_route_takes_a_priority(client, project) -> None:
    base = f"/api/v1/projects/{project['_id']}"
    plain = client.post(f"{base}/experiment?queue=true", json=OPTIONS).get_json()["_id"]
    batch = client.post(f"{base}/batch?priority=2", json=[options(seed=1)]).get_json()["_ids"]
    search = client.post(
        f"{base}/search?priority=1",
        json={"method": "grid", "spec": {"optimiser": {"values": ["sgd"]}}},
    ).get_json()["_ids"]
    single = client.post(f"{base}/experiment?queue=true&priority=3", json=OPTIONS).get_json()

    docs = [client.get(f"/api/v1/experiments/{i}").get_json() for i in (plain, *batch, *search)]
    assert [doc["_priority"] for doc in docs] == [0, 2, 1]
    assert [position(client, i) for i in (single["_id"], batch[0], search[0], plain)] == [
        1,
        2,
        3,
        4,
    ]


@pytest.mark.parametrize("raw", ["high", "1.5", "1001", "-1001"])
def test_a_bad_priority_is_refused_and_stores_nothing(client, db, project, raw: str) -> None:
    url = f"/api/v1/projects/{project['_id']}/experiment?queue=true&priority={raw}"
    response = client.post(url, json=OPTIONS)

    assert response.status_code == 400
    assert response.get_json()["error"] == (
        f"priority is {raw!r}; use a whole number from -1000 to 1000"
    )
    assert db["experiments"].count_documents({}) == 0


def test_priority_cannot_be_changed_by_put(client, experiment_id) -> None:
    response = client.put(f"/api/v1/experiments/{experiment_id}", json={"_priority": 9})
    assert response.status_code == 400


def test_a_rerun_keeps_its_priority(client, project) -> None:
    base = f"/api/v1/projects/{project['_id']}"
    first = client.post(f"{base}/experiment?queue=true&priority=4", json=OPTIONS).get_json()["_id"]
    rerun = client.post(f"/api/v1/experiments/{first}/rerun").get_json()["_id"]
    assert client.get(f"/api/v1/experiments/{rerun}").get_json()["_priority"] == 4


def test_front_moves_a_queued_experiment_ahead_of_every_other(client, new_experiment) -> None:
    ids = [new_experiment(seed=seed) for seed in range(4)]

    response = client.post(f"/api/v1/experiments/{ids[2]}/front")

    assert response.status_code == 200
    assert response.get_json()["_queue_position"] == 1
    assert [position(client, i) for i in ids] == [2, 3, 1, 4]


def test_front_refuses_an_experiment_that_no_longer_waits(client, experiment_id) -> None:
    assert client.post(f"/api/v1/experiments/{experiment_id}/kill").status_code == 200

    response = client.post(f"/api/v1/experiments/{experiment_id}/front")

    assert response.status_code == 409
    assert "is cancelled, not queued" in response.get_json()["error"]


def test_the_experiment_page_shows_the_queue_position_and_a_front_button(
    client, new_experiment
) -> None:
    first, second = new_experiment(seed=1), new_experiment(seed=2)

    doc = page(client.get(f"/experiments/{second}"))

    assert text(find(doc, "#queue-position")) == "2"
    assert text(find(doc, "#front")) == "Move to front"
    assert text(find(doc, "#priority")) == "0"
    client.post(f"/api/v1/experiments/{second}/front")
    assert text(find(page(client.get(f"/experiments/{second}")), "#queue-position")) == "1"
    assert text(find(page(client.get(f"/experiments/{first}")), "#queue-position")) == "2"
