"""The project page's table actions: sort by a score, filter by status, CSV export, rerun.

Written against the reworked project page (a server-paged table with a status filter,
sortable score headers, an "Export CSV" button, and a "Rerun" button on the experiment
page) that is being built alongside these tests; selectors are by role and visible text
so that they fit any markup of those controls.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable

import pytest
from bson import ObjectId
from playwright.sync_api import Locator, Page, expect

from tests.browser.conftest import Stack
from tests.waiting import wait_for

EXPERIMENT_URL = re.compile(r"/experiments/([0-9a-f]{24})$")


def experiment_rows(page: Page) -> Locator:
    """The table rows that stand for an experiment (they link to its page)."""
    return page.locator("tbody tr").filter(has=page.locator('a[href^="/experiments/"]'))


def column(page: Page, name: str) -> Locator:
    """The cells of the experiments table's column headed `name`, top to bottom."""
    headers = page.get_by_role("columnheader")
    expect(headers.filter(has_text=name).first).to_be_visible()
    texts = [t.strip() for t in headers.all_text_contents()]
    index = next(i for i, t in enumerate(texts) if t == name or t.startswith(name))
    return experiment_rows(page).locator(f"td:nth-child({index + 1})")


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

    def accuracies() -> list[str]:
        """The accuracy column top to bottom, blanks (the failed run) left out: a server
        may sort a missing score first or last."""
        return [t.strip() for t in column(page, "accuracy").all_text_contents() if t.strip()]

    header.click()
    expect(header).to_have_attribute("aria-sort", "ascending")
    wait_for(lambda: accuracies() == ["0.7", "0.8", "0.9"], 15, "rows sorted by accuracy")

    header.click()
    expect(header).to_have_attribute("aria-sort", "descending")
    wait_for(lambda: accuracies() == ["0.9", "0.8", "0.7"], 15, "rows sorted by accuracy, desc")
    expect(experiment_rows(page)).to_have_count(4)


def test_filtering_by_status(
    open_page: Callable[..., Page], stack: Stack, finished: tuple[dict, dict[str, str]]
) -> None:
    project, ids = finished
    page = open_page(f"/projects/{project['_id']}")
    expect(experiment_rows(page)).to_have_count(4)
    status_filter = page.get_by_role("combobox", name=re.compile("status", re.IGNORECASE))

    status_filter.select_option("fail")
    failed = next(i for i, s in ids.items() if s == "fail")
    expect(experiment_rows(page)).to_have_count(1)
    expect(experiment_rows(page)).to_contain_text(failed)

    status_filter.select_option("success")
    expect(experiment_rows(page)).to_have_count(3)
    for experiment_id, status in ids.items():
        expect(experiment_rows(page).filter(has_text=experiment_id)).to_have_count(
            1 if status == "success" else 0
        )


def test_export_csv_has_every_experiment_with_its_scores(
    open_page: Callable[..., Page], stack: Stack, finished: tuple[dict, dict[str, str]]
) -> None:
    project, ids = finished
    page = open_page(f"/projects/{project['_id']}")
    expect(experiment_rows(page)).to_have_count(4)
    with page.expect_download() as download:
        page.get_by_role("button", name="Export CSV").click()
    assert download.value.suggested_filename.endswith(".csv")
    with open(download.value.path(), newline="", encoding="utf-8-sig") as f:
        table = list(csv.reader(io.StringIO(f.read())))

    header, rows = table[0], table[1:]
    assert "accuracy" in header and "lr" in header
    assert len(rows) == 4
    docs = {
        str(d["_id"]): d
        for d in stack.db["experiments"].find({"_project_id": ObjectId(project["_id"])})
    }
    by_id = {next(cell for cell in row if cell in ids): row for row in rows}
    assert set(by_id) == set(ids)
    for experiment_id, row in by_id.items():
        doc = docs[experiment_id]
        assert row[header.index("lr")] == str(doc["_options"]["lr"])
        accuracy = doc.get("_scores", {}).get("accuracy")
        assert row[header.index("accuracy")] == ("" if accuracy is None else str(accuracy))


def test_rerun_makes_a_new_experiment_with_the_same_options(
    open_page: Callable[..., Page], stack: Stack, project: dict
) -> None:
    first = stack.submit(project, lr=0.4)
    stack.wait_status(first, "success")
    page = open_page(f"/experiments/{first}")
    page.get_by_role("button", name="Rerun").click()

    expect(page).not_to_have_url(re.compile(rf"/experiments/{first}$"))
    expect(page).to_have_url(EXPERIMENT_URL)
    second = EXPERIMENT_URL.search(page.url).group(1)
    done = stack.wait_status(second, "success")
    assert done["_options"] == stack.experiment(first)["_options"]
    assert done["_project_id"] == project["_id"]
    page.reload()
    expect(page.locator("#status")).to_have_text("success")
