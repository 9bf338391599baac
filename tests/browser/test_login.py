"""With PASSWORD set, a browser meets the login page first and gets where it was going."""

from __future__ import annotations

import re
from collections.abc import Callable

from playwright.sync_api import Page, expect

from tests.browser.conftest import PASSWORD, Stack


def test_the_login_page_comes_first_and_a_password_opens_the_pages(
    open_page: Callable[..., Page], stack: Stack, password_url: str, project: dict
) -> None:
    wanted = f"/projects/{project['_id']}"
    page = open_page(wanted, base_url=password_url)

    expect(page).to_have_url(re.compile(r"/login\?next="))
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    expect(page.get_by_role("link", name=project["name"])).to_have_count(0)
    assert page.request.get("/api/v1/projects").status == 401

    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_have_text("Wrong password")
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()

    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{password_url}{wanted}")
    expect(page.get_by_role("heading", level=1)).to_contain_text(project["name"])

    # The session cookie opens the other pages and the API too.
    page.get_by_role("link", name="Home").click()
    expect(page.get_by_role("link", name=project["name"])).to_be_visible()
    names = [p["name"] for p in page.request.get("/api/v1/projects").json()]
    assert project["name"] in names
