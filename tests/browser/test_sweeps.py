"""Sweeps in the browser: create one from the project page, watch it finish, read its
parallel coordinates, curves and a pruned trial's reason, and compare two trials.

The sweep runs program.py's ``curve`` mode on the stack's machine: a loss of
``lr + 1 / step`` over 20 steps of 0.15 s. A grid over lr 0, 1, 2, 3 two at a time with
median pruning after 2 startup trials ends with the first two trials complete and the
last two pruned (their loss is worse than the median of the first two at every step).
"""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.browser.conftest import Stack

SWEEP_URL = re.compile(r"/sweeps/([0-9a-f]{24})$")
#: Seconds for four trials of about 3 s each, two at a time, on two shared cores.
SWEEP_TIMEOUT_MS = 120_000


def test_a_sweep_made_on_the_project_page_finishes_prunes_and_compares(
    stack: Stack, open_page, screenshots: Path
) -> None:
    project = stack.new_project()
    page: Page = open_page(f"/projects/{project['_id']}#optimisation")
    form = page.get_by_test_id("sweep-form")

    def row(name: str):
        return form.locator(f'.search-field[data-name="{name}"]')

    row("mode").locator('[data-key="values"]').fill("curve")
    row("epochs").locator('[data-key="min"]').fill("20")
    row("epochs").locator('[data-key="max"]').fill("21")
    row("epochs").locator('[data-key="steps"]').fill("1")
    row("lr").locator('[data-key="min"]').fill("0")
    row("lr").locator('[data-key="max"]').fill("4")
    row("lr").locator('[data-key="steps"]').fill("4")
    expect(row("lr").get_by_label("Vary lr")).to_be_checked()  # editing a row varies it
    form.get_by_label("Grid").check()
    form.get_by_label("Objective score").fill("loss")
    form.get_by_label("Goal").select_option("minimize")
    form.get_by_label("Parallelism").fill("2")
    form.get_by_label("Pruning").select_option("median")
    form.get_by_label("startup trials").fill("2")
    form.screenshot(path=str(screenshots / "sweep_form.png"))
    form.get_by_role("button", name="Create sweep").click()

    expect(page).to_have_url(SWEEP_URL)
    expect(page.get_by_test_id("sweep-state")).to_have_text("finished", timeout=SWEEP_TIMEOUT_MS)

    trials = page.get_by_test_id("trials").locator("tbody tr")
    expect(trials).to_have_count(4)
    statuses = [trials.nth(i).locator(".status").inner_text() for i in range(4)]
    assert statuses == ["success", "success", "pruned", "pruned"]
    pruned = page.locator('#trials tr[data-trial="2"] .reason')
    expect(pruned).to_have_text(
        # Of the trials that reported that very step (a quick step can land with the next).
        re.compile(
            r"pruned at step \d+: loss [\d.]+ is worse than the median [\d.]+ of [12] trials?"
        )
    )
    expect(page.get_by_test_id("sweep-best")).to_contain_text("Best: trial 0")

    # Parallel coordinates: a line per trial with an objective, pruned ones dashed; the
    # axes are the options that took more than one value, and the objective.
    parallel = page.get_by_test_id("parallel-coordinates")
    expect(parallel.locator("polyline.pc-line")).to_have_count(4)
    expect(parallel.locator("polyline.pc-line.pruned")).to_have_count(2)
    expect(parallel.locator(".pc-name")).to_have_text(["lr", "loss"])
    # Each trial's curve; the pruned ones end with their mark.
    curves = page.get_by_test_id("trial-curves")
    expect(curves.locator("polyline.curve")).to_have_count(4)
    expect(curves.locator(".pruned-mark")).to_have_count(2)

    # Sorting the table by objective, worst first.
    objective = page.get_by_role("columnheader", name="Objective")
    objective.click()
    objective.click()
    expect(objective).to_have_attribute("aria-sort", "descending")
    expect(trials.first).to_have_attribute("data-trial", "3")

    page.screenshot(path=str(screenshots / "sweep_page.png"), full_page=True)

    # Compare the two trials that finished.
    compare = page.get_by_role("button", name="Compare selected")
    expect(compare).to_be_disabled()
    page.get_by_label("Select trial 0").check()
    page.get_by_label("Select trial 1").check()
    expect(compare).to_be_enabled()
    compare.click()
    expect(page).to_have_url(re.compile(rf"/projects/{project['_id']}/compare\?ids="))
    table = page.get_by_test_id("compare-table")
    expect(table.locator("thead th[data-id]")).to_have_count(2)
    expect(table.locator('tr[data-option="lr"]')).to_have_attribute("data-differs", "true")
    charts = page.get_by_test_id("compare-charts")
    expect(charts.locator("figure")).to_have_count(2)  # train and validation
    expect(charts.locator('figure[data-series="train"] .c3-line')).to_have_count(2)
