"""Tags in the project page: typed in the submit form, shown in the table's Tags column,
counted as chips that filter the table (``input[name=tag]`` in ``[data-testid=tag-filter]``)."""

from __future__ import annotations

import re
from collections.abc import Callable

from playwright.sync_api import Page, expect

from tests.browser.conftest import Stack

EXPERIMENT_URL = re.compile(r"/experiments/([0-9a-f]{24})$")


def test_tags_from_the_form_show_in_the_table_and_filter_it(
    open_page: Callable[..., Page], stack: Stack
) -> None:
    project = stack.new_project()
    untagged = stack.submit(project)
    page = open_page(f"/projects/{project['_id']}#new")
    page.get_by_test_id("experiment-tags").fill("baseline, paper-v2")
    page.get_by_role("button", name="Submit experiment").click()
    page.wait_for_url(EXPERIMENT_URL)
    tagged = EXPERIMENT_URL.search(page.url).group(1)
    assert stack.experiment(tagged)["_tags"] == ["baseline", "paper-v2"]

    page = open_page(f"/projects/{project['_id']}")
    rows = page.get_by_test_id("experiments-table").locator("tbody tr[data-id]")
    expect(rows).to_have_count(2)
    tag_cells = page.locator(f'tbody tr[data-id="{tagged}"] td.tags .tag')
    expect(tag_cells).to_have_text(["baseline", "paper-v2"])
    chips = page.get_by_test_id("tag-filter")
    expect(chips.locator(".tag-choice")).to_have_count(2)

    chips.locator('input[name="tag"][value="paper-v2"]').check()
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-id", tagged)
    assert "tag=paper-v2" in page.url

    chips.locator('input[name="tag"][value="paper-v2"]').uncheck()
    expect(rows).to_have_count(2)
    assert {rows.nth(i).get_attribute("data-id") for i in range(2)} == {tagged, untagged}


def test_the_experiment_page_edits_its_tags(open_page: Callable[..., Page], stack: Stack) -> None:
    project = stack.new_project()
    experiment_id = stack.submit(project)
    page = open_page(f"/experiments/{experiment_id}")
    section = page.get_by_test_id("tags")
    section.get_by_label("Tags, comma-separated").fill("ablation, seed:3")
    section.get_by_role("button", name="Save tags").click()
    expect(section.locator("#tag-chips .tag")).to_have_text(["ablation", "seed:3"])
    assert stack.experiment(experiment_id)["_tags"] == ["ablation", "seed:3"]

    section.get_by_label("Tags, comma-separated").fill("two words")
    section.get_by_role("button", name="Save tags").click()
    expect(section.locator("#tags-message")).to_contain_text("tag 'two words' is not allowed")
    assert stack.experiment(experiment_id)["_tags"] == ["ablation", "seed:3"]  # unchanged
