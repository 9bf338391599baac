"""The access page: make a token (its secret shown once), use and revoke it; log out
everywhere ends this browser's session and every other one."""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from collections.abc import Callable

from playwright.sync_api import Page, expect

from tests.browser.conftest import PASSWORD


def _status(url: str, headers: dict[str, str]) -> int:
    """The status of a GET sent with `headers` only (no browser cookie)."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10):
            return 200
    except urllib.error.HTTPError as e:
        return e.code


def _log_in(page: Page) -> None:
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()


def test_a_token_is_made_used_and_revoked_and_sessions_end_everywhere(
    open_page: Callable[..., Page], password_url: str
) -> None:
    other = open_page("/", base_url=password_url)
    _log_in(other)
    expect(other.get_by_role("link", name="Access")).to_be_visible()

    page = open_page("/tokens", base_url=password_url)
    _log_in(page)
    expect(page.get_by_role("heading", name="API tokens")).to_be_visible()
    page.get_by_label("Token name").fill("nightly <b>sweep</b>")
    page.get_by_role("button", name="Create").click()
    secret = page.get_by_test_id("new-token")
    expect(secret).to_have_text(re.compile(r"^fglab_"))
    token = secret.inner_text()
    row = page.locator("#tokens tbody tr", has_text="nightly <b>sweep</b>")
    expect(row).to_have_count(1)  # the name shown as text, not markup
    bearer = {"Authorization": f"Bearer {token}"}
    assert _status(f"{password_url}/api/v1/projects", bearer) == 200

    row.get_by_role("button", name="Revoke").click()
    expect(row).to_have_count(0)
    expect(page.locator("#token-message")).to_contain_text("Token revoked")
    assert _status(f"{password_url}/api/v1/projects", bearer) == 401

    page.reload()
    expect(page.locator("#tokens tbody tr", has_text="nightly")).to_have_count(0)
    page.get_by_role("button", name="Log out everywhere").click()
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    other.reload()
    expect(other.get_by_role("heading", name="Log in")).to_be_visible()
    _log_in(page)  # a new login opens the pages again
    expect(page).to_have_url(password_url + "/")
    page.get_by_role("link", name="Access").click()
    expect(page.get_by_role("heading", name="Sessions")).to_be_visible()
    page.get_by_label("Token name").fill("kept for the screenshot")
    page.get_by_role("button", name="Create").click()
    expect(page.locator("#tokens tbody tr", has_text="kept")).to_have_count(1)
