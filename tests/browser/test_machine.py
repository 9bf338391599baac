"""The machine page: the capacity ledger shows each running experiment's lease, live."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.browser.conftest import Stack


def test_the_ledger_shows_the_lease_of_a_running_experiment(
    open_page: Callable[..., Page], stack: Stack, project: dict, tmp_path: Path
) -> None:
    # Two experiments that sleep until told: one ends during the test, one runs on to its end
    # (so that the screenshot shows a lease).
    ends, stays = tmp_path / "ends", tmp_path / "stays"
    ending = stack.submit(project, mode="sleep", until=str(ends))
    staying = stack.submit(project, mode="sleep", until=str(stays))
    try:
        for experiment_id in (ending, staying):
            assert stack.wait_status(experiment_id, "running")["_machine_id"] == stack.machine
        page = open_page(f"/machines/{stack.machine}")
        expect(page.get_by_role("heading", level=1)).to_contain_text(stack.machine)

        ledger = page.get_by_test_id("ledger")
        expect(ledger.get_by_role("heading", name="Capacity ledger")).to_be_visible()
        leases = page.get_by_test_id("leases")
        for experiment_id in (ending, staying):
            lease = leases.locator(f'tr[data-owner="{experiment_id}"]')
            expect(lease).to_have_count(1)
            cells = lease.locator("td")
            expect(cells.nth(0).get_by_role("link", name=experiment_id)).to_have_attribute(
                "href", f"/experiments/{experiment_id}"
            )
            expect(cells.nth(1)).to_have_text(project["name"])
            expect(cells.nth(2)).to_have_text("running")
            expect(cells.nth(3)).to_have_text("0.25")  # the project's capacity
            expect(cells.nth(6)).to_contain_text("(in ")  # renewed by the heartbeat
        cpu_used = float(ledger.get_by_test_id("cpu-used").get_attribute("data-value") or "0")
        assert cpu_used >= 0.5

        # When an experiment ends its lease goes; the section refreshes by itself.
        ends.write_text("go")
        stack.wait_status(ending, "success")
        expect(leases.locator(f'tr[data-owner="{ending}"]')).to_have_count(0)
        expect(leases.locator(f'tr[data-owner="{staying}"]')).to_have_count(1)
        page.get_by_test_id("ledger").scroll_into_view_if_needed()  # for the screenshot
    finally:
        ends.write_text("go")
        stays.write_text("go")
