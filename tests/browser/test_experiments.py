"""Experiments through the pages: submit, follow the log, charts, images, notes, kill, search.

Each test checks what the page shows and, where the page changed something, the
experiment documents in MongoDB.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from bson import ObjectId
from playwright.sync_api import Page, expect

from tests.browser.conftest import EXPERIMENT_TIMEOUT, Stack, start_web
from tests.integration.fleet import Fleet
from tests.waiting import wait_for

EXPERIMENT_URL = re.compile(r"/experiments/([0-9a-f]{24})$")
#: The C3 chart of program.py's report mode (6 epochs): each series' (x, value) points.
TRAIN = [(e, round(1 / e, 4)) for e in range(1, 7)]
VALIDATION = [(e, round(1.5 / e, 4)) for e in (2, 4, 6)]


def status(page: Page):
    return page.locator("#status")


def logs(page: Page):
    return page.locator("#logs")


@pytest.fixture(scope="module")
def report(stack: Stack) -> dict:
    """A finished experiment of program.py's report mode: scores, a chart and an image."""
    project = stack.new_project()
    experiment_id = stack.submit(project, mode="report", epochs=6, lr=0.2)
    stack.wait_status(experiment_id, "success")
    # The results folder is uploaded before the status moves; the document is whole now.
    return stack.experiment(experiment_id)


def drawn_series(page: Page, name: str) -> list[list[float]]:
    """The (x, value) points C3 drew for series `name` (the data bound to its line)."""
    line = page.locator(f"path.c3-line-{name}")
    expect(line).to_have_count(1)
    return line.evaluate("path => path.__data__.values.map((p) => [p.x, p.value])")


def test_an_experiment_submitted_from_the_form_runs_and_shows_its_status(
    open_page: Callable[..., Page], stack: Stack, project: dict
) -> None:
    page = open_page(f"/projects/{project['_id']}")
    page.get_by_role("tab", name="New experiment").click()
    page.get_by_role("textbox", name="mode").fill("report")
    page.get_by_role("spinbutton", name="lr").fill("0.05")
    page.get_by_role("spinbutton", name="epochs").fill("3")
    page.get_by_role("button", name="Submit experiment").click()

    expect(page).to_have_url(EXPERIMENT_URL)
    experiment_id = EXPERIMENT_URL.search(page.url).group(1)
    doc = stack.experiment(experiment_id)
    assert doc["_project_id"] == project["_id"]
    assert doc["_options"] == {
        "mode": "report",
        "lr": 0.05,
        "epochs": 3,
        "until": "none",
        "points": 100000,
    }
    expect(page.get_by_role("heading", level=1)).to_contain_text(experiment_id)

    done = stack.wait_status(experiment_id, "success")
    assert done["_scores"] == {"accuracy": 0.95}
    page.reload()
    expect(status(page)).to_have_text("success")
    expect(page.get_by_role("button", name="Kill")).to_have_count(0)
    scores = page.locator("table.scores")
    expect(scores.get_by_role("row", name="accuracy")).to_contain_text("0.95")
    expect(page.locator("td.time").nth(2)).to_have_text(re.compile(r"^\d{4}-\d\d-\d\d "))


def test_log_lines_appear_live_and_the_end_shows(
    open_page: Callable[..., Page], stack: Stack, project: dict, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    experiment_id = stack.submit(project, mode="report", epochs=6, until=str(go))
    page = open_page(f"/experiments/{experiment_id}")

    # The program prints three epochs, then waits for `go`: the page shows them meanwhile.
    expect(logs(page)).to_contain_text("epoch 3/6")
    expect(logs(page)).to_contain_text("waiting for the go-ahead")
    expect(logs(page)).not_to_contain_text("epoch 4/6")
    # Still running: the lines were shown live, not replayed from the kept log.
    assert stack.wait_status(experiment_id, "running")["_status"] == "running"

    go.write_text("go")
    expect(logs(page)).to_contain_text("epoch 6/6")
    expect(logs(page)).to_contain_text("done")
    expect(page.locator("#logs-message")).to_have_text("End of log.")
    text = logs(page).inner_text()
    assert [line for line in text.splitlines() if line.startswith("epoch")] == [
        f"epoch {e}/6: loss {1 / e:.4f}" for e in range(1, 7)
    ]

    stack.wait_status(experiment_id, "success")
    page.reload()
    expect(status(page)).to_have_text("success")
    expect(logs(page)).to_contain_text("epoch 6/6")  # the kept log replays


def test_a_stream_past_its_lifetime_reconnects_without_an_error_or_repeats(
    open_page: Callable[..., Page], stack: Stack, project: dict, tmp_path: Path
) -> None:
    fleet = Fleet(stack.fleet.settings, stack.root / "fleet-short-streams")
    try:
        _, url = start_web(fleet, FGLAB_STREAM_LIFETIME=1)
        go = tmp_path / "go"
        experiment_id = stack.submit(project, mode="report", epochs=6, until=str(go))
        page = open_page(f"/experiments/{experiment_id}", base_url=url)
        expect(logs(page)).to_contain_text("waiting for the go-ahead")

        # The stream ends after a second; the browser comes back for what follows.
        with page.expect_request(lambda r: "/logs/stream" in r.url) as reconnection:
            pass
        assert reconnection.value.header_value("last-event-id")
        go.write_text("go")
        expect(page.locator("#logs-message")).to_have_text("End of log.")
        text = logs(page).inner_text()
        assert [line for line in text.splitlines() if line.startswith("epoch")] == [
            f"epoch {e}/6: loss {1 / e:.4f}" for e in range(1, 7)
        ]
        assert text.count("waiting for the go-ahead") == 1
    finally:
        fleet.stop_all()


def test_the_chart_draws_every_series_on_its_own_x_with_axis_labels(
    open_page: Callable[..., Page], stack: Stack, report: dict
) -> None:
    page = open_page(f"/experiments/{report['_id']}")
    expect(page.get_by_role("heading", name="Charts")).to_be_visible()
    chart = page.locator("#charts .chart")
    expect(chart).to_have_count(1)
    expect(chart.locator("svg")).to_be_visible()

    assert drawn_series(page, "train") == [list(p) for p in TRAIN]
    assert drawn_series(page, "validation") == [list(p) for p in VALIDATION]
    # Exactly these two series, with their legends and the chart's axis labels.
    expect(chart.locator("path.c3-line")).to_have_count(2)
    expect(chart.locator(".c3-legend-item")).to_have_text(["train", "validation"])
    expect(chart.locator(".c3-axis-x-label")).to_have_text("epoch")
    expect(chart.locator(".c3-axis-y-label")).to_have_text("loss")
    # What was drawn is what the program wrote.
    columns = report["_charts"]["data"]["columns"]
    assert [list(p) for p in TRAIN] == [list(p) for p in zip(columns[2], columns[0], strict=True)]
    assert [list(p) for p in VALIDATION] == [
        list(p) for p in zip(columns[3], columns[1], strict=True)
    ]
    chart.scroll_into_view_if_needed()  # for the screenshot


def test_a_long_series_is_drawn_from_a_thousand_points(
    open_page: Callable[..., Page], stack: Stack, project: dict
) -> None:
    experiment_id = stack.submit(project, mode="bigchart", points=100_000)
    stack.wait_status(experiment_id, "success")
    # Listen before the page loads: a reload raced the first load's /charts answer, whose
    # body is gone once that page is navigated away from.
    page = open_page("about:blank")
    with page.expect_response(re.compile(r"/charts$")) as answer:
        page.goto(f"/experiments/{experiment_id}")
    sent = answer.value.json()
    columns = {column[0]: column[1:] for column in sent[0]["data"]["columns"]}
    assert len(columns["loss"]) == 1000
    assert len(columns[sent[0]["data"]["xs"]["loss"]]) == 1000

    drawn = drawn_series(page, "loss")
    assert len(drawn) == 1000
    assert drawn[0] == [0, 1.01] and drawn[-1][0] == 99_999  # LTTB keeps both ends
    path = page.locator("path.c3-line-loss").get_attribute("d") or ""
    assert path.startswith("M") and path.count("L") == 999
    # The stored series is whole: the API gives all of it when asked.
    full = page.request.get(f"/api/v1/experiments/{experiment_id}/charts?points=100000").json()
    assert len(full[0]["data"]["columns"][0]) == 100_001
    page.locator("#charts .chart").scroll_into_view_if_needed()  # for the screenshot


def test_the_image_is_shown(open_page: Callable[..., Page], stack: Stack, report: dict) -> None:
    page = open_page(f"/experiments/{report['_id']}")
    image = page.get_by_role("img", name="plot.png")
    image.scroll_into_view_if_needed()
    expect(image).to_be_visible()
    expect(image).to_have_js_property("naturalWidth", 160)
    expect(image).to_have_js_property("naturalHeight", 90)
    stored = [f for f in report["_files"] if f["filename"] == "plot.png"]
    assert len(stored) == 1 and stored[0]["mimetype"] == "image/png"
    expect(image).to_have_attribute("src", f"/api/v1/files/{stored[0]['_id']}")


def test_a_note_is_saved_and_is_there_after_a_reload(
    open_page: Callable[..., Page], stack: Stack, report: dict
) -> None:
    note = "lr 0.2 overshoots; try 0.05 next"
    page = open_page(f"/experiments/{report['_id']}")
    box = page.get_by_placeholder("Notes are saved as you type")
    box.fill("")
    box.press_sequentially(note)
    expect(page.locator("#notes-message")).to_have_text("Saved")
    wait_for(
        lambda: stack.experiment(str(report["_id"])).get("_notes") == note,
        10,
        "the note to reach MongoDB",
    )
    page.reload()
    expect(page.get_by_placeholder("Notes are saved as you type")).to_have_value(note)


def test_a_running_experiment_is_killed_from_its_page(
    open_page: Callable[..., Page], stack: Stack, project: dict, tmp_path: Path
) -> None:
    experiment_id = stack.submit(project, mode="sleep", until=str(tmp_path / "never"))
    stack.wait_status(experiment_id, "running")
    page = open_page(f"/experiments/{experiment_id}")
    expect(status(page)).to_have_text("running")
    expect(logs(page)).to_contain_text("sleeping until")

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Kill").click()
    expect(page.locator("#kill-message")).to_contain_text("Kill requested")
    doc = stack.wait_status(experiment_id, "killed")
    assert doc.get("_kill_requested") is not None
    assert doc.get("_finished") is not None

    page.reload()
    expect(status(page)).to_have_text("killed")
    expect(page.get_by_role("button", name="Kill")).to_have_count(0)


def test_a_grid_search_of_six_makes_six_rows(
    open_page: Callable[..., Page], stack: Stack, project: dict
) -> None:
    page = open_page(f"/projects/{project['_id']}")
    page.get_by_role("tab", name="Optimisation").click()
    row = page.locator("#search-form tr.search-field", has_text="lr")
    row.get_by_role("checkbox", name="Vary lr").check()
    row.get_by_role("spinbutton", name="min").fill("0.1")
    row.get_by_role("spinbutton", name="max").fill("0.7")
    row.get_by_role("spinbutton", name="steps").fill("6")
    expect(page.get_by_role("radio", name="Grid search")).to_be_checked()
    page.get_by_role("button", name="Submit search").click()
    expect(page.locator("#search-message")).to_contain_text("Started 6 experiment(s)")

    query = {"_project_id": ObjectId(project["_id"])}
    docs = list(stack.db["experiments"].find(query))
    assert sorted(d["_options"]["lr"] for d in docs) == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    wait_for(
        lambda: stack.db["experiments"].count_documents({**query, "_status": "success"}) == 6,
        EXPERIMENT_TIMEOUT,
        "the six experiments of the grid to succeed",
    )

    page.reload()
    page.get_by_role("tab", name="Experiments").click()
    rows = page.get_by_test_id("experiments-table").locator("tbody tr[data-id][data-status]")
    expect(rows).to_have_count(6)
    for doc in docs:
        row = rows.and_(page.locator(f'[data-id="{doc["_id"]}"]'))
        expect(row).to_have_attribute("data-status", "success")
        expect(row.get_by_role("link", name=str(doc["_id"]))).to_be_visible()
