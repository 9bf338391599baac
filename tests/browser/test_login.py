"""With PASSWORD set, a browser meets the login page first and gets where it was going."""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import urlparse

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
    # Back where it was going; the project page then adds its table's state to the query
    # (?sort=...&order=...), so the path is what must match.
    back = re.compile(rf"^{re.escape(password_url + wanted)}(\?[^#]*)?(#.*)?$")
    expect(page).to_have_url(back)
    assert urlparse(page.url).path == wanted
    expect(page.get_by_role("heading", level=1)).to_contain_text(project["name"])

    # The session cookie opens the other pages and the API too.
    page.get_by_role("link", name="Home").click()
    project_id = str(project["_id"])
    listed = page.locator(f'[data-testid=project][data-project-id="{project_id}"]')
    expect(listed.get_by_role("link", name=project["name"])).to_be_visible()
    names = [p["name"] for p in page.request.get("/api/v1/projects").json()]
    assert project["name"] in names
