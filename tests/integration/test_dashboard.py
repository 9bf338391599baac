"""The dashboard's live pieces: home counts and capacity, the machine's ledger and queue,
rerun and clone, compare, a failed run's summary, and all of it behind a password.

Pages are parsed (tests/html.py) and checked element by element, as a reader sees them.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from bs4 import BeautifulSoup
from bson import ObjectId
from redis import Redis

from fglab.app import create_app
from fglab.extensions import services
from tasks import counts
from tasks.experiments import Reservation
from tasks.logs import log_key
from tests.html import classes, find, page, page_data, text
from tests.integration.api.helpers import EXAMPLE_SCHEMA, OPTIONS, submit, upload_schema


@pytest.fixture
def project(client) -> dict[str, Any]:
    response = upload_schema(client, EXAMPLE_SCHEMA, "mnist.json")
    assert response.status_code == 201, response.get_json()
    return response.get_json()


@pytest.fixture
def machine_name() -> str:
    """A machine name no other test uses (the ledger lives in the shared Redis)."""
    return f"box-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def ledger(app, machine_name):
    ledger = services(app).scheduler.ledger
    assert ledger is not None
    yield ledger
    ledger.redis.delete(ledger.lease_key(machine_name), ledger.expiry_key(machine_name))


def _experiment(client, project: dict[str, Any], **changes: Any) -> str:
    response = submit(client, project["_id"], {**OPTIONS, **changes})
    assert response.status_code == 201, response.get_json()
    return response.get_json()["_id"]


def _page(client, url: str) -> BeautifulSoup:
    response = client.get(url)
    assert response.status_code == 200, response.data[:500]
    return page(response)


def _live_machine(store, name: str, **fields: Any) -> None:
    store.upsert_machine(name, {"hostname": name, **fields})
    store.set_machine_fields(name, {"_heartbeat": datetime.now(UTC) - timedelta(seconds=1)})


def _set(db, experiment_id: str, fields: dict[str, Any]) -> None:
    db["experiments"].update_one({"_id": ObjectId(experiment_id)}, {"$set": fields})
    if "_status" in fields:  # a status written by hand: the periodic repair counts it
        counts.repair(db, "experiments")  # found off: marked
        counts.repair(db, "experiments")  # off again: set right


# Home -------------------------------------------------------------------------------


def test_home_counts_each_projects_experiments_by_status(client, db, project) -> None:
    other = upload_schema(client, EXAMPLE_SCHEMA, "cifar.json").get_json()
    ids = [_experiment(client, project) for _ in range(5)]
    _experiment(client, other)
    for experiment_id, status in zip(ids, ["success", "success", "fail", "running"], strict=False):
        _set(db, experiment_id, {"_status": status})

    home = _page(client, "/")

    def counts(project_id: str) -> dict[str, int]:
        item = find(home, f'[data-testid="project"][data-project-id="{project_id}"]')
        return {a["data-status"]: int(a["data-count"]) for a in item.select("a[data-status]")}

    assert counts(project["_id"]) == {"queued": 1, "running": 1, "success": 2, "fail": 1}
    assert counts(other["_id"]) == {"queued": 1}
    link = find(home, f'[data-project-id="{project["_id"]}"] a[data-status="fail"]')
    assert link["href"] == f"/projects/{project['_id']}?status=fail"
    assert text(link) == "fail 1"


def test_home_shows_each_machines_free_capacity(client, store, ledger, machine_name) -> None:
    _live_machine(store, machine_name, gpu_count=2, gpus=["H100", "H100"])
    assert ledger.reserve(machine_name, "owner-1", 0.25, gpu_share=0.5, gpu_count=2)

    home = _page(client, "/")

    item = find(home, f'[data-testid="machine"][data-machine-id="{machine_name}"]')
    capacity = find(item, '[data-testid="machine-capacity"]')
    assert capacity["data-cpu-free"] == "0.750"
    assert text(capacity) == "1 running · CPU 75% free · GPU 0 50% free · GPU 1 100% free"
    assert [text(b) for b in item.select("span.badge")] == ["live"]


# Machine ----------------------------------------------------------------------------


def test_machine_page_shows_the_ledger_leases(client, store, project, ledger, machine_name):
    _live_machine(store, machine_name, gpu_count=2, gpus=["H100", "H100"])
    project_id = ObjectId(project["_id"])
    held = []
    for share in (0.5, 0.25):
        experiment_id = ObjectId()
        lease = ledger.reserve(machine_name, str(experiment_id), 0.25, gpu_share=share, gpu_count=2)
        assert lease is not None
        store.new_experiment(
            project_id,
            OPTIONS,
            experiment_id=experiment_id,
            reservation=Reservation(machine_name, lease.token, lease.gpu),
        )
        held.append((str(experiment_id), lease.gpu))

    machine_page = _page(client, f"/machines/{machine_name}")

    ledger_section = find(machine_page, '[data-testid="ledger"]')
    assert find(ledger_section, '[data-testid="cpu-used"]')["data-value"] == "0.500"
    gpus = {
        cell["data-gpu"]: (cell["data-value"], text(cell))
        for cell in ledger_section.select('[data-testid="gpu-use"]')
    }
    assert gpus == {"0": ("0.500", "50% in use by 1 slot"), "1": ("0.250", "25% in use by 1 slot")}
    leases = {
        row["data-owner"]: [text(td) for td in row.find_all("td")]
        for row in ledger_section.select('[data-testid="leases"] tbody tr')
    }
    assert set(leases) == {owner for owner, _ in held}
    for owner, gpu in held:
        cells = leases[owner]
        assert cells[:5] == [owner, "mnist", "dispatched", "0.25", str(gpu)]
        expires = datetime.strptime(cells[6][:19], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
        assert timedelta(0) < expires - datetime.now(UTC) <= timedelta(seconds=31)
        assert re.fullmatch(r"\(in ([0-9]|[12][0-9]|30) s\)", cells[6][20:])
    waiting = find(machine_page, '[data-testid="machine-queue"]')
    assert {a["href"] for a in waiting.select("a")} == {f"/experiments/{o}" for o, _ in held}


def test_machine_page_lists_the_queue_of_its_projects(client, store, project, machine_name):
    # Submitted before the machine exists, so they wait; then it serves their project.
    queued = [_experiment(client, project, seed=seed) for seed in range(3)]
    other = upload_schema(client, EXAMPLE_SCHEMA, "other.json").get_json()
    _experiment(client, other)
    store.upsert_machine(machine_name, {"projects": {project["_id"]: {"capacity": 1}}})

    machine_page = _page(client, f"/machines/{machine_name}")

    queue = find(machine_page, '[data-testid="queue"]')
    rows = [[text(td) for td in row.find_all("td")] for row in queue.select("tbody tr")]
    assert [row[:3] for row in rows] == [
        [str(n), experiment_id, "mnist"] for n, experiment_id in enumerate(queued, start=1)
    ]
    assert "3 queued experiments" in text(find(machine_page, '[data-testid="machine-queue"] p'))


def test_machine_page_links_to_flower_when_configured(settings, store, machine_name) -> None:
    store.upsert_machine(machine_name, {})
    with_flower = create_app(settings.with_changes(flower_url="http://flower:5555"), store=store)

    linked = page(with_flower.test_client().get(f"/machines/{machine_name}"))
    plain = page(create_app(settings, store=store).test_client().get(f"/machines/{machine_name}"))

    link = find(linked, '[data-testid="flower-link"]')
    assert (link["href"], text(link)) == ("http://flower:5555", "Open Flower")
    assert plain.select('[data-testid="flower-link"]') == []


# Rerun, clone, compare --------------------------------------------------------------


def test_rerun_submits_the_same_options_as_a_new_experiment(client, db, project) -> None:
    original = _experiment(client, project, seed=42, model="rnn")
    _set(db, original, {"_status": "fail", "_timeout": 60.0, "_scores": {"loss": 1.0}})

    answer = client.post(f"/api/v1/experiments/{original}/rerun")

    assert answer.status_code == 201, answer.get_json()
    new_id = answer.get_json()["_id"]
    assert new_id != original
    new = db["experiments"].find_one({"_id": ObjectId(new_id)})
    assert new["_options"] == {**OPTIONS, "seed": 42, "model": "rnn"}
    assert (new["_status"], new["_timeout"], new.get("_scores")) == ("queued", 60.0, None)
    assert new["_project_id"] == ObjectId(project["_id"])


def test_rerun_refuses_what_cannot_run(client, db, project) -> None:
    missing = str(ObjectId())
    orphan = _experiment(client, project)
    _set(db, orphan, {"_project_id": ObjectId()})

    unknown = client.post(f"/api/v1/experiments/{missing}/rerun")
    gone = client.post(f"/api/v1/experiments/{orphan}/rerun")

    assert unknown.status_code == 404
    assert gone.status_code == 400
    assert "does not exist" in gone.get_json()["error"]
    assert db["experiments"].count_documents({}) == 1


def test_experiment_page_offers_rerun_and_clone(client, project) -> None:
    experiment_id = _experiment(client, project)

    experiment_page = _page(client, f"/experiments/{experiment_id}")

    rerun = find(experiment_page, '[data-testid="rerun"]')
    assert (rerun.name, rerun["type"], text(rerun)) == ("button", "button", "Rerun")
    clone = find(experiment_page, '[data-testid="clone"]')
    assert text(clone) == "Clone and edit"
    assert clone["href"] == f"/projects/{project['_id']}?clone={experiment_id}#new"
    pause = find(experiment_page, '[data-testid="logs-pause"]')
    assert (text(pause), pause["aria-pressed"]) == ("Pause", "false")


def test_clone_prefills_the_form_with_its_options(client, project) -> None:
    source = _experiment(client, project, seed=77, model="my model", optimiser="rmsprop", L2=True)

    form_page = _page(client, f"/projects/{project['_id']}?clone={source}")

    form = find(form_page, '[data-testid="experiment-form"]')
    assert find(form, 'input[name="seed"]')["value"] == "77"
    assert find(form, 'input[name="model"]')["value"] == "my model"
    assert find(form, 'input[name="learningRate"]')["value"] == "0.01"
    assert text(find(form, 'select[name="optimiser"] option[selected]')) == "rmsprop"
    assert find(form, 'input[name="L2"][value="true"]').has_attr("checked")
    assert not find(form, 'input[name="L2"][value="false"]').has_attr("checked")
    assert source in text(find(form_page, '[data-testid="clone-notice"]'))


def test_clone_of_another_projects_experiment_keeps_the_defaults(client, project) -> None:
    other = upload_schema(client, EXAMPLE_SCHEMA, "other.json").get_json()
    foreign = _experiment(client, other, seed=5)

    form_page = _page(client, f"/projects/{project['_id']}?clone={foreign}")

    assert find(form_page, 'form#experiment-form input[name="seed"]')["value"] == "123"
    assert form_page.select('[data-testid="clone-notice"]') == []


def test_compare_shows_options_and_scores_side_by_side(client, db, project) -> None:
    first = _experiment(client, project, seed=1)
    second = _experiment(client, project, seed=2)
    _set(db, first, {"_scores": {"loss": 0.5}})
    _set(db, second, {"_scores": {"loss": 0.25, "acc": 0.9}, "_status": "success"})

    compare = _page(client, f"/projects/{project['_id']}/compare?ids={second},{first}")

    table = find(compare, '[data-testid="compare-table"]')
    assert [th["data-id"] for th in table.select("thead th[data-id]")] == [second, first]
    differing = [row["data-option"] for row in table.select("tr.option[data-differs]")]
    assert differing == ["seed"]
    seed_cells = [text(td) for td in find(table, 'tr[data-option="seed"]').find_all("td")]
    assert seed_cells == ["2", "1"]
    scores = {
        row["data-score"]: [text(td) for td in row.find_all("td")]
        for row in table.select("tr[data-score]")
    }
    assert scores == {"loss": ["0.25", "0.5"], "acc": ["0.9", ""]}


# A failed run -----------------------------------------------------------------------


def test_failed_run_shows_its_reason_and_stderr_first(client, db, project) -> None:
    experiment_id = _experiment(client, project)
    reason = "exit code 2\n--- last lines of stderr ---\nTraceback\nValueError: bad lr"
    _set(
        db,
        experiment_id,
        {"_status": "fail", "_exit": {"code": 2, "signal": None, "reason": reason}},
    )

    experiment_page = _page(client, f"/experiments/{experiment_id}")

    failure = find(experiment_page, '[data-testid="failure"]')
    assert failure["role"] == "alert"
    assert "fail" in classes(find(failure, "h2 .status"))[1]
    assert find(failure, "#failure-reason").get_text() == "exit code 2"
    assert (
        find(failure, '[data-testid="stderr-tail"]').get_text() == "Traceback\nValueError: bad lr"
    )
    # It comes before everything else of the record.
    assert experiment_page.find("h2").find_parent("section") is failure


def test_lost_run_shows_stderr_from_the_live_log(client, db, project, settings) -> None:
    experiment_id = _experiment(client, project)
    _set(
        db,
        experiment_id,
        {
            "_status": "lost",
            "_exit": {"code": None, "signal": None, "reason": "machine gpu-a went silent"},
        },
    )
    redis = Redis.from_url(settings.redis)
    key = log_key(experiment_id)
    try:
        redis.xadd(key, {"s": "out", "t": "epoch 1\n"})
        redis.xadd(key, {"s": "err", "t": "warning: slow\nCUDA error: out of memory\n"})
        redis.xadd(key, {"s": "out", "t": "epoch 2\n"})

        experiment_page = _page(client, f"/experiments/{experiment_id}")
    finally:
        redis.delete(key)
        redis.close()

    failure = find(experiment_page, '[data-testid="failure"]')
    assert find(failure, "#failure-reason").get_text() == "machine gpu-a went silent"
    tail = find(failure, '[data-testid="stderr-tail"]').get_text()
    assert tail == "warning: slow\nCUDA error: out of memory"


def test_successful_and_running_runs_show_no_failure(client, db, project) -> None:
    done = _experiment(client, project)
    _set(
        db,
        done,
        {"_status": "success", "_exit": {"code": 0, "signal": None, "reason": "exit code 0"}},
    )

    assert _page(client, f"/experiments/{done}").select('[data-testid="failure"]') == []
    assert (
        _page(client, f"/experiments/{_experiment(client, project)}").select(
            '[data-testid="failure"]'
        )
        == []
    )


def test_experiment_fields_can_be_read_alone(client, db, project) -> None:
    experiment_id = _experiment(client, project)
    _set(db, experiment_id, {"_scores": {"loss": 0.3}, "_charts": {"data": {"columns": [[1]]}}})

    answer = client.get(f"/api/v1/experiments/{experiment_id}?fields=_status,_scores")
    bad = client.get(f"/api/v1/experiments/{experiment_id}?fields=$where")

    assert answer.get_json() == {
        "_id": experiment_id,
        "_status": "queued",
        "_scores": {"loss": 0.3},
    }
    assert bad.status_code == 400


# The project page -------------------------------------------------------------------


def test_project_page_renders_the_newest_page_with_table_controls(client, db, project) -> None:
    ids = [_experiment(client, project, seed=seed) for seed in range(3)]
    _set(db, ids[0], {"_status": "success"})

    project_page = _page(client, f"/projects/{project['_id']}")

    table = find(project_page, '[data-testid="experiments-table"]')
    assert [row["data-id"] for row in table.select("tbody tr")] == ids[::-1]
    assert text(find(project_page, '[data-testid="page-info"]')) == "1\u20133 of 3"
    statuses = {
        box["value"]: text(box.find_parent("label").find("span", class_="count"))
        for box in project_page.select('[data-testid="status-filter"] input[name="status"]')
    }
    assert (statuses["queued"], statuses["success"], statuses["fail"]) == ("2", "1", "0")
    for button in ("Compare selected", "Rerun selected", "Kill selected", "Delete selected"):
        assert project_page.find("button", string=button) is not None
    export = find(project_page, '[data-testid="export-csv"]')
    assert export["href"].startswith(f"/api/v1/projects/{project['_id']}/experiments.csv?")
    data = page_data(project_page)
    assert (data["total"], data["sort"], data["order"]) == (3, "_created", "desc")


# With a password --------------------------------------------------------------------


@pytest.fixture
def locked(settings, store):
    app = create_app(settings.with_changes(password="s3cret"), store=store)
    app.config["TESTING"] = True
    return app.test_client()


def test_every_page_and_export_needs_the_password(locked, store, machine_name) -> None:
    project = upload_schema(locked, EXAMPLE_SCHEMA, "mnist.json")
    assert project.status_code == 401
    store.upsert_machine(machine_name, {})
    project_id = str(store.projects.create("mnist", EXAMPLE_SCHEMA))
    urls = [
        "/",
        f"/projects/{project_id}",
        f"/projects/{project_id}/compare?ids={ObjectId()}",
        f"/machines/{machine_name}",
    ]
    for url in urls:
        response = locked.get(url)
        assert response.status_code == 302, url
        assert response.headers["Location"].startswith("/login?next=")
    for url in (f"/api/v1/projects/{project_id}/experiments.csv",):
        assert locked.get(url).status_code == 401

    login = locked.post("/login", data={"password": "s3cret", "next": f"/projects/{project_id}"})
    assert (login.status_code, login.headers["Location"]) == (302, f"/projects/{project_id}")

    for url in urls:
        assert locked.get(url).status_code == 200, url
    csv_answer = locked.get(f"/api/v1/projects/{project_id}/experiments.csv")
    assert csv_answer.status_code == 200
    assert csv_answer.get_data(as_text=True).startswith("_id,status,seed")
    rerun = locked.post(f"/api/v1/experiments/{ObjectId()}/rerun")
    assert rerun.status_code == 404  # reached the route: the session is enough
    assert text(find(page(locked.get("/")), "h1")) == "Projects"
