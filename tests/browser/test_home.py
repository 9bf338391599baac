"""The home page: uploading a project schema, with a bad field and then a good one."""

from __future__ import annotations

import json
import re
import uuid
from urllib.parse import urlparse

from playwright.sync_api import Page, expect

from tests.browser.conftest import Stack


def schema_file(name: str, schema: object) -> dict:
    return {"name": name, "mimeType": "application/json", "buffer": json.dumps(schema).encode()}


def test_a_bad_schema_shows_its_error_and_a_good_one_makes_the_project(
    page: Page, stack: Stack
) -> None:
    name = f"upload-{uuid.uuid4().hex[:6]}"
    form = page.locator("#schema-form")
    upload = page.get_by_role("button", name="Upload schema")

    form.locator('input[type="file"]').set_input_files(
        schema_file(f"{name}.json", {"lr": {"type": "floaty", "default": 0.1}})
    )
    upload.click()
    message = form.get_by_role("status")
    expect(message).to_contain_text("lr")
    expect(message).to_contain_text("floaty")
    expect(message).to_have_class(re.compile(r"\berror\b"))
    assert stack.db["projects"].find_one({"name": name}) is None
    expect(page).to_have_url(f"{stack.url}/")

    schema = {
        "lr": {"type": "float", "default": 0.1},
        "optimiser": {"type": "enum", "values": ["sgd", "adam"], "default": "adam"},
    }
    form.locator('input[type="file"]').set_input_files(schema_file(f"{name}.json", schema))
    upload.click()

    # The project page keeps its table's state in the query (?sort=...&order=...): match
    # the path only.
    expect(page).to_have_url(re.compile(r"/projects/[0-9a-f]{24}(\?[^#]*)?(#.*)?$"))
    expect(page.get_by_role("heading", level=1)).to_contain_text(name)
    stored = stack.db["projects"].find_one({"name": name})
    assert stored is not None
    assert stored["schema"] == schema
    assert urlparse(page.url).path == f"/projects/{stored['_id']}"
    # The new experiment form offers the schema's options.
    page.get_by_role("tab", name="New experiment").click()
    expect(page.get_by_role("spinbutton", name="lr")).to_have_value("0.1")
    expect(page.get_by_role("combobox", name="optimiser")).to_have_value("adam")

    page.get_by_role("link", name="Home").click()
    project_id = str(stored["_id"])
    listed = page.locator(f'[data-testid=project][data-project-id="{project_id}"]')
    expect(listed.get_by_role("link", name=name)).to_be_visible()
    expect(listed).to_contain_text("2 options, 0 experiments")
