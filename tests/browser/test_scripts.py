"""The pages' scripts (native ES modules under /assets/js/, no build step) load and run
without a console error or an uncaught exception on every kind of page.

Each page opens in a fresh context with its listeners attached before it loads, waits
for what its setup draws (rows, charts, SVG), and then for a moment more, so that a late
error (a chart, a poll) is caught too. Every script it fetched must have been served
with a JavaScript MIME type: a browser refuses a module script without one.
"""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Response, expect

from tests.browser.conftest import VIEWPORT, Stack
from tests.waiting import wait_for

#: Seconds for a sweep of two short trials (0.45 s each) on two shared cores.
SWEEP_TIMEOUT = 90.0
#: Milliseconds to stay on a page after its setup drew, for late errors.
SETTLE_MS = 1500
#: The browser asks for it by itself; FGLab has none (a 404 that no script caused).
FAVICON = "/favicon.ico"


def _post(stack: Stack, path: str, body: Any) -> dict:
    request = urllib.request.Request(
        f"{stack.url}{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


def _get(stack: Stack, path: str) -> dict:
    with urllib.request.urlopen(f"{stack.url}{path}", timeout=10) as answer:
        return json.loads(answer.read())


@pytest.fixture(scope="module")
def pages(stack: Stack) -> dict[str, Any]:
    """A project with a finished experiment (scores, a chart, an image) and a finished
    sweep of two trials that reported a curve."""
    project = stack.new_project()
    experiment_id = stack.submit(project, mode="report", epochs=4, lr=0.2)
    stack.wait_status(experiment_id, "success")
    body = {
        "method": "grid",
        "space": {
            "mode": {"values": ["curve"]},
            "epochs": {"min": 3, "max": 4, "steps": 1},
            "lr": {"min": 0.1, "max": 0.3, "steps": 2},
        },
        "parallelism": 2,
        "objective": {"score": "loss", "goal": "minimize"},
    }
    sweep = _post(stack, f"/api/v1/projects/{project['_id']}/sweeps", body)
    wait_for(
        lambda: _get(stack, f"/api/v1/sweeps/{sweep['_id']}")["state"] == "finished",
        SWEEP_TIMEOUT,
        f"sweep {sweep['_id']} to finish",
    )
    trials = [t["experiment"] for t in _get(stack, f"/api/v1/sweeps/{sweep['_id']}")["trials"]]
    return {
        "project": str(project["_id"]),
        "experiment": experiment_id,
        "sweep": sweep["_id"],
        "trials": trials,
    }


class Watched:
    """A page with its console errors, uncaught exceptions and script responses."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.errors: list[str] = []
        self.scripts: dict[str, str] = {}
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.errors.append(f"pageerror: {error}"))
        page.on("response", self._response)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error" and not message.location.get("url", "").endswith(FAVICON):
            self.errors.append(f"console: {message.text} ({message.location})")

    def _response(self, response: Response) -> None:
        if response.url.endswith(".js"):
            self.scripts[response.url] = response.headers.get("content-type", "")
        if response.status >= 400 and not response.url.endswith(FAVICON):
            self.errors.append(f"HTTP {response.status}: {response.url}")


@pytest.fixture
def watch(
    browser: Browser, stack: Stack, screenshots: Path, request: pytest.FixtureRequest
) -> Iterator[Any]:
    """Opens a path in a fresh context, watched from before it loads; the last page is
    the test's screenshot."""
    contexts = []
    watched: list[Watched] = []

    def open_(path: str) -> Watched:
        context = browser.new_context(base_url=stack.url, viewport=VIEWPORT)
        context.set_default_timeout(15_000)
        contexts.append(context)
        page = Watched(context.new_page())
        watched.append(page)
        page.page.goto(path)
        return page

    yield open_
    if watched:
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
        watched[-1].page.screenshot(path=str(screenshots / f"{name}.png"))
    for context in contexts:
        context.close()


def _drawn(kind: str, page: Page) -> None:
    """Wait for what the page's setup draws once its scripts ran."""
    if kind == "home":
        expect(page.get_by_role("link", name=re.compile("browser-"))).not_to_have_count(0)
    elif kind == "project":
        rows = page.locator("#experiments-table tbody tr")
        expect(rows).not_to_have_count(0)
        expect(page.locator("#experiments-table")).to_have_attribute("aria-busy", "false")
    elif kind == "experiment":
        expect(page.locator("#charts svg").first).to_be_visible()
        expect(page.locator("#logs span").first).to_be_attached()
    elif kind == "machine":
        expect(page.get_by_test_id("ledger")).to_be_visible()
    elif kind == "sweep":
        expect(page.locator("#sweep-chart svg").first).to_be_visible()
        expect(page.get_by_test_id("parallel-coordinates").locator("polyline")).not_to_have_count(0)
        expect(page.get_by_test_id("trial-curves").locator("polyline")).not_to_have_count(0)
    elif kind == "compare":
        expect(page.locator("#compare-charts svg").first).to_be_visible()


def _path(kind: str, stack: Stack, pages: dict[str, Any]) -> str:
    return {
        "home": "/",
        "project": f"/projects/{pages['project']}",
        "experiment": f"/experiments/{pages['experiment']}",
        "machine": f"/machines/{stack.machine}",
        "sweep": f"/sweeps/{pages['sweep']}",
        "compare": f"/projects/{pages['project']}/compare?ids={','.join(pages['trials'])}",
    }[kind]


@pytest.mark.parametrize("kind", ["home", "project", "experiment", "machine", "sweep", "compare"])
def test_a_page_runs_its_scripts_without_errors(
    kind: str, watch, stack: Stack, pages: dict[str, Any]
) -> None:
    watched: Watched = watch(_path(kind, stack, pages))
    page = watched.page

    expect(page.locator("body")).to_have_attribute("data-page", kind)
    _drawn(kind, page)
    page.wait_for_timeout(SETTLE_MS)

    assert watched.errors == []
    modules = [url for url in watched.scripts if "/assets/js/" in url]
    assert f"{stack.url}/assets/js/main.js" in modules
    assert f"{stack.url}/assets/js/api.js" in modules  # main's imports were followed
    wrong = {url: mime for url, mime in watched.scripts.items() if "javascript" not in mime}
    assert wrong == {}
    assert not [url for url in watched.scripts if url.endswith("/app.js")]
