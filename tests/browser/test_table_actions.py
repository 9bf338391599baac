"""The project page's table actions: sort by a score, filter by status, CSV export, select
and compare, and "Rerun" on the experiment page.

The project page's table is paged by the server and keeps its state (sort, order, status
filter...) in the page's query, e.g. ``/projects/<id>?sort=_created&order=desc``. The
selectors are the page's stable hooks: ``#experiments-table`` (``aria-busy`` while it
loads), its rows ``tr[data-id][data-status]``, the header cells' ``data-sort`` keys, the
status filter's checkboxes ``input[name=status][value=<status>]`` with their counts
``[data-status-count]``, ``[data-testid=export-csv]``, ``[data-testid=selection-count]``
and the experiment page's ``[data-testid=rerun]``.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from urllib.parse import parse_qs, urlparse

import pytest
from bson import ObjectId
from playwright.sync_api import Locator, Page, expect

from tests.browser.conftest import SCHEMA, Stack
from tests.waiting import wait_for

EXPERIMENT_URL = re.compile(r"/experiments/([0-9a-f]{24})$")


def table(page: Page) -> Locator:
    return page.get_by_test_id("experiments-table")


def experiment_rows(page: Page) -> Locator:
    """The experiments table's rows, one per experiment on this page of it."""
    return table(page).locator("tbody tr[data-id][data-status]")


def row_ids(page: Page) -> list[str]:
    return [r.get_attribute("data-id") or "" for r in experiment_rows(page).all()]


def column(page: Page, sort_key: str) -> Locator:
    """The cells of the column whose header sorts by `sort_key` (``_scores.accuracy``)."""
    header = table(page).locator(f'thead th[data-sort="{sort_key}"]')
    expect(header).to_have_count(1)
    index = header.evaluate("th => th.cellIndex")
    return experiment_rows(page).locator(f"td:nth-child({index + 1})")


def loaded(page: Page) -> None:
    """Wait until the table has no request in flight."""
    expect(table(page)).to_have_attribute("aria-busy", "false")


def query(page: Page) -> dict[str, list[str]]:
    """The page's query, as the table keeps its state there."""
    return parse_qs(urlparse(page.url).query)


def status_box(page: Page, status: str) -> Locator:
    return page.get_by_test_id("status-filter").locator(f'input[name="status"][value="{status}"]')


@pytest.fixture(scope="module")
def finished(stack: Stack) -> tuple[dict, dict[str, str]]:
    """A project with four finished experiments: accuracy 0.7, 0.9, 0.8 and one failure.

    Returns the project and each experiment ID mapped to its status.
    """
    project = stack.new_project()
    ids = {stack.submit(project, lr=lr): "success" for lr in (0.3, 0.1, 0.2)}
    ids[stack.submit(project, mode="fail")] = "fail"
    for experiment_id, status in ids.items():
        stack.wait_status(experiment_id, status)
    return project, ids


def test_sorting_by_a_score_column(
    open_page: Callable[..., Page], stack: Stack, finished: tuple[dict, dict[str, str]]
) -> None:
    project, _ = finished
    page = open_page(f"/projects/{project['_id']}")
    expect(experiment_rows(page)).to_have_count(4)
    header = page.get_by_role("columnheader", name="accuracy")
    expect(header).to_have_attribute("data-sort", "_scores.accuracy")

    def accuracies() -> list[str]:
        """The accuracy column top to bottom, blanks (the failed run) left out: a server
        may sort a missing score first or last."""
        cells = column(page, "_scores.accuracy").all_text_contents()
        return [t.strip() for t in cells if t.strip()]

    header.click()
    expect(header).to_have_attribute("aria-sort", "ascending")
    wait_for(lambda: accuracies() == ["0.7", "0.8", "0.9"], 15, "rows sorted by accuracy")
    assert query(page)["sort"] == ["_scores.accuracy"] and query(page)["order"] == ["asc"]

    header.click()
    expect(header).to_have_attribute("aria-sort", "descending")
    wait_for(lambda: accuracies() == ["0.9", "0.8", "0.7"], 15, "rows sorted by accuracy, desc")
    expect(experiment_rows(page)).to_have_count(4)
    assert query(page)["sort"] == ["_scores.accuracy"] and query(page)["order"] == ["desc"]

    # The sort lives in the URL: a reload shows the same order.
    page.reload()
    header = page.get_by_role("columnheader", name="accuracy")
    expect(header).to_have_attribute("aria-sort", "descending")
    loaded(page)
    wait_for(lambda: accuracies() == ["0.9", "0.8", "0.7"], 15, "the sort to last a reload")


def test_filtering_by_status(
    open_page: Callable[..., Page], stack: Stack, finished: tuple[dict, dict[str, str]]
) -> None:
    project, ids = finished
    page = open_page(f"/projects/{project['_id']}")
    expect(experiment_rows(page)).to_have_count(4)
    counts = page.get_by_test_id("status-filter")
    expect(counts.locator('[data-status-count="success"]')).to_have_text("3")
    expect(counts.locator('[data-status-count="fail"]')).to_have_text("1")
    expect(counts.locator('[data-status-count="running"]')).to_have_text("0")

    status_box(page, "fail").check()
    failed = next(i for i, s in ids.items() if s == "fail")
    expect(experiment_rows(page)).to_have_count(1)
    expect(experiment_rows(page)).to_have_attribute("data-id", failed)
    expect(experiment_rows(page)).to_have_attribute("data-status", "fail")
    assert query(page)["status"] == ["fail"]

    status_box(page, "fail").uncheck()
    status_box(page, "success").check()
    expect(experiment_rows(page)).to_have_count(3)
    loaded(page)
    assert sorted(row_ids(page)) == sorted(i for i, s in ids.items() if s == "success")
    expect(table(page).locator('tbody tr[data-status="success"]')).to_have_count(3)
    assert query(page)["status"] == ["success"]
    expect(page.get_by_test_id("page-info")).to_have_text("1\u20133 of 3")

    # The filter lives in the URL: a reload keeps it, box ticked.
    page.reload()
    expect(status_box(page, "success")).to_be_checked()
    expect(status_box(page, "fail")).not_to_be_checked()
    loaded(page)
    expect(experiment_rows(page)).to_have_count(3)

    # Both ticked: every experiment again.
    status_box(page, "fail").check()
    expect(experiment_rows(page)).to_have_count(4)
    assert sorted(query(page)["status"]) == ["fail", "success"]


def read_csv(path: str) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8-sig") as f:
        return list(csv.reader(io.StringIO(f.read())))


def test_export_csv_has_every_experiment_with_its_scores(
    open_page: Callable[..., Page], stack: Stack, finished: tuple[dict, dict[str, str]]
) -> None:
    project, ids = finished
    page = open_page(f"/projects/{project['_id']}")
    expect(experiment_rows(page)).to_have_count(4)
    loaded(page)
    export = page.get_by_test_id("export-csv")
    expect(export).to_have_text("Export CSV")
    href = urlparse(export.get_attribute("href") or "")
    assert href.path == f"/api/v1/projects/{project['_id']}/experiments.csv"
    with page.expect_download() as download:
        export.click()
    assert download.value.suggested_filename == f"{project['name']}-experiments.csv"
    table_ = read_csv(download.value.path())

    header, rows = table_[0], table_[1:]
    assert header == ["_id", "status", *SCHEMA, "accuracy", "duration", "tags"]
    assert len(rows) == 4
    docs = {
        str(d["_id"]): d
        for d in stack.db["experiments"].find({"_project_id": ObjectId(project["_id"])})
    }
    by_id = {row[0]: row for row in rows}
    assert set(by_id) == set(ids)
    for experiment_id, row in by_id.items():
        doc = docs[experiment_id]
        assert row[header.index("status")] == ids[experiment_id] == doc["_status"]
        assert row[header.index("mode")] == doc["_options"]["mode"]
        assert row[header.index("lr")] == str(doc["_options"]["lr"])
        assert row[header.index("epochs")] == str(doc["_options"]["epochs"])
        accuracy = doc.get("_scores", {}).get("accuracy")
        assert row[header.index("accuracy")] == ("" if accuracy is None else str(accuracy))
        seconds = (doc["_finished"] - doc["_started"]).total_seconds()
        assert float(row[header.index("duration")]) == pytest.approx(seconds, abs=0.002)

    # The export follows the table's filter: only the successes once "success" is ticked.
    status_box(page, "success").check()
    expect(experiment_rows(page)).to_have_count(3)
    expect(export).to_have_attribute("href", re.compile(r"[?&]status=success(&|$)"))
    with page.expect_download() as download:
        export.click()
    rows = read_csv(download.value.path())[1:]
    assert sorted(row[0] for row in rows) == sorted(i for i, s in ids.items() if s == "success")
    assert {row[1] for row in rows} == {"success"}


def test_selected_rows_are_compared_with_the_differing_options_marked(
    open_page: Callable[..., Page], stack: Stack, finished: tuple[dict, dict[str, str]]
) -> None:
    project, ids = finished
    by_lr = {
        stack.experiment(i)["_options"]["lr"]: i for i, status in ids.items() if status == "success"
    }
    chosen = [by_lr[0.3], by_lr[0.1]]  # accuracy 0.7 and 0.9; same mode, epochs...
    page = open_page(f"/projects/{project['_id']}")
    expect(experiment_rows(page)).to_have_count(4)
    loaded(page)
    compare = page.get_by_role("button", name="Compare selected")
    expect(compare).to_be_disabled()
    expect(page.get_by_test_id("selection-count")).to_have_text("0 selected")

    for experiment_id in chosen:
        table(page).locator(f'input.select-row[data-id="{experiment_id}"]').check()
    expect(page.get_by_test_id("selection-count")).to_have_text("2 selected")
    expect(page.locator("#select-page")).to_have_js_property("indeterminate", True)
    expect(compare).to_be_enabled()
    compare.click()

    expect(page).to_have_url(re.compile(rf"/projects/{project['_id']}/compare\?"))
    assert urlparse(page.url).path == f"/projects/{project['_id']}/compare"
    assert query(page)["ids"] == [",".join(chosen)]
    expect(page.get_by_role("heading", level=1)).to_have_text("Compare experiments")
    compared = page.get_by_test_id("compare-table")
    expect(compared.locator("thead th[data-id]")).to_have_count(2)
    assert [
        th.get_attribute("data-id") for th in compared.locator("thead th[data-id]").all()
    ] == chosen

    # lr differs and is marked; the options left at their defaults are not.
    lr = compared.locator('tr.option[data-option="lr"]')
    expect(lr).to_have_attribute("data-differs", "true")
    expect(lr).to_have_class(re.compile(r"\bdiffers\b"))
    expect(lr.locator(".badge.differs")).to_have_text("differs")
    expect(lr.locator("td")).to_have_text(["0.3", "0.1"])
    for name in ("mode", "epochs", "until", "points"):
        same = compared.locator(f'tr.option[data-option="{name}"]')
        expect(same).to_have_count(1)
        expect(same).not_to_have_attribute("data-differs", "true")
        expect(same.locator(".badge.differs")).to_have_count(0)
    expect(compared.locator("tr[data-differs]")).to_have_count(1)
    expect(compared.locator('tr.score[data-score="accuracy"] td')).to_have_text(["0.7", "0.9"])


def test_rerun_makes_a_new_experiment_with_the_same_options(
    open_page: Callable[..., Page], stack: Stack, project: dict
) -> None:
    first = stack.submit(project, lr=0.4, epochs=7)
    stack.wait_status(first, "success")
    page = open_page(f"/experiments/{first}")
    rerun = page.get_by_test_id("rerun")
    expect(rerun).to_have_text("Rerun")
    rerun.click()

    expect(page).not_to_have_url(re.compile(rf"/experiments/{first}$"))
    expect(page).to_have_url(EXPERIMENT_URL)
    second = EXPERIMENT_URL.search(page.url).group(1)
    assert second != first
    expect(page.get_by_role("heading", level=1)).to_contain_text(second)
    done = stack.wait_status(second, "success")
    assert done["_options"] == stack.experiment(first)["_options"]
    assert done["_options"]["lr"] == 0.4 and done["_options"]["epochs"] == 7
    assert done["_project_id"] == project["_id"]
    assert done["_scores"] == {"accuracy": 0.6}
    assert stack.db["experiments"].count_documents({"_project_id": project["_id"]}) == 2
    page.reload()
    expect(page.locator("#status")).to_have_text("success")
    expect(page.locator("#scores").get_by_role("row", name="accuracy")).to_contain_text("0.6")
