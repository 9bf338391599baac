"""A list of every experiment cannot exhaust FGLab's memory (issue 17, item 8): the whole
list is written out as MongoDB hands it over (chunked, no Content-Length, so no process
builds it whole), and a page on request is capped; batches are capped at 10,000."""

from __future__ import annotations

import json

from tests.security.web import send, serve


def test_the_whole_list_is_streamed_and_pages_are_capped(fleet, store, project) -> None:
    ids = store.new_experiments(
        project["_id"], [{"mode": "write", "until": "x" * 2000} for _ in range(1500)]
    )
    _, url = serve(fleet)

    whole = send(url + "/api/v1/experiments")
    assert whole.status == 200
    assert whole.headers.get("Transfer-Encoding") == "chunked"
    assert "Content-Length" not in whole.headers
    assert [e["_id"] for e in json.loads(whole.body)] == [str(i) for i in ids]

    too_big = send(url + f"/api/v1/projects/{project['_id']}/experiments?limit=100000")
    assert too_big.status == 400
    assert too_big.json() == {"error": "limit is '100000'; use a whole number from 1 to 1000"}
    far = send(url + "/api/v1/experiments?limit=10&offset=2147483648")
    assert far.status == 400
    assert far.json() == {
        "error": "offset is '2147483648'; use a whole number from 0 to 1000000000"
    }


def test_a_batch_over_the_cap_is_refused_whole(fleet, db, project) -> None:
    _, url = serve(fleet)
    body = json.dumps([{}] * 10_001).encode()
    answer = send(
        url + f"/api/v1/projects/{project['_id']}/batch",
        "POST",
        body,
        {"Content-Type": "application/json"},
    )
    assert answer.status == 413
    assert "over the cap of 10,000" in answer.json()["error"]
    assert db.experiments.count_documents({}) == 0
