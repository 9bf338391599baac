"""A run's code on its experiment page: commit, branch, the dirty marker, the diff, the
command and the host (the ``#code`` section, ``[data-testid=code]``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bson import ObjectId
from playwright.sync_api import Page, expect

from tasks import experiments
from tests.browser.conftest import Stack

COMMIT = "9c41e07b" + "5" * 32
DIFF = (
    "diff --git a/train.py b/train.py\n"
    "--- a/train.py\n"
    "+++ b/train.py\n"
    "@@ -10,7 +10,7 @@ def main():\n"
    "     rng = random.Random(seed)\n"
    "-    rate = 0.1\n"
    "+    rate = 0.05  # <b>halved</b>\n"
    "     model = Model(rate)\n"
)


def test_a_runs_page_shows_the_code_the_worker_recorded(
    open_page: Callable[..., Page], stack: Stack, project: dict
) -> None:
    """program.py runs from this suite's folder: whatever its git state, the page shows it."""
    experiment_id = stack.submit(project)
    doc = stack.wait_status(experiment_id, "success")
    code = doc["_code"]
    page = open_page(f"/experiments/{experiment_id}")
    section = page.get_by_test_id("code")
    expect(section.get_by_role("heading", name="Code")).to_be_visible()
    expect(section.locator("#code-host")).to_have_text(code["host"])
    expect(section.locator("#code-command")).to_contain_text(str(Path(code["command"][1]).name))
    if code.get("commit"):
        expect(section.locator("#code-commit")).to_have_text(code["commit"][:7])
        expect(section.get_by_test_id("code-dirty")).to_have_count(1 if code["dirty"] else 0)
    else:
        expect(section.locator("#code-commit")).to_have_text(
            "none: its folder is not a git checkout"
        )
    section.scroll_into_view_if_needed()


def test_a_dirty_checkouts_diff_opens_on_the_page(
    open_page: Callable[..., Page], stack: Stack, project: dict
) -> None:
    experiment_id = stack.submit(project)
    stack.wait_status(experiment_id, "success")
    code = {
        "repo": "https://git.example.org/lab/train.git",
        "commit": COMMIT,
        "branch": "lr-sweep",
        "dirty": True,
        "command": ["/usr/bin/python3.13", "train.py", f"--_id={experiment_id}", "--lr=0.05"],
        "host": "gpu-box-3",
        "python": "3.13.1",
    }
    experiments.record_code(stack.db, ObjectId(experiment_id), None, code, DIFF)

    page = open_page(f"/experiments/{experiment_id}")
    section = page.get_by_test_id("code")
    expect(section.locator("#code-commit")).to_have_text("9c41e07")
    expect(section.get_by_test_id("code-dirty")).to_have_text("dirty")
    expect(section.locator("#code-branch")).to_have_text("lr-sweep")
    expect(section.locator("#code-repo")).to_have_text(code["repo"])
    diff = section.get_by_test_id("code-diff")
    expect(diff).to_be_hidden()
    section.get_by_text("Uncommitted changes").click()
    expect(diff).to_be_visible()
    expect(diff).to_have_text(DIFF)  # the markup in it is shown as text
    expect(diff.locator("b")).to_have_count(0)
    section.scroll_into_view_if_needed()
