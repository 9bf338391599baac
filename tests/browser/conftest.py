"""Browser tests: Chromium (Playwright, sync API) against a real FGLab stack.

One stack per session: ``fglab web`` (waitress) on a free port, FGLab's jobs worker (the
scheduler) and one machine worker, ``celery -A worker worker -Q machine-<name>``, all on
the suite's MongoDB and the Redis at REDIS_URL. The machine runs ``program.py`` (next to
this file) for every project the tests make; each test project is added to its
projects.json, which the worker rereads by itself.

Chromium is Debian's ``/usr/bin/chromium`` (``.ci/run`` installs it); Playwright's own
browser download is not used. Every test leaves a 1280x800 screenshot of its page under
``test-artifacts/screenshots/<test name>.png`` (an artifact to look at, not a check).
"""

from __future__ import annotations

import json
import re
import socket
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, Playwright, expect, sync_playwright
from playwright.sync_api import Error as PlaywrightError
from pymongo import MongoClient
from pymongo.database import Database

from config import Settings
from fglab.store import Store
from tests.integration.fleet import Fleet, Process, experiment, live, machine_name, serves
from tests.waiting import wait_for

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
PROGRAM = Path(__file__).parent / "program.py"
#: The options of every test project (program.py reads them all).
SCHEMA: dict[str, dict[str, Any]] = {
    "mode": {"type": "string", "default": "quick"},
    "lr": {"type": "float", "default": 0.1},
    "epochs": {"type": "int", "default": 4},
    "until": {"type": "string", "default": "none"},
    "points": {"type": "int", "default": 100000},
}
VIEWPORT = {"width": 1280, "height": 800}
#: Seconds to wait for anything an experiment does (two shared CPU cores start Python slowly).
EXPERIMENT_TIMEOUT = 60.0
PASSWORD = "correct horse battery staple"

_SCREENSHOTS = pytest.StashKey[Path]()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def answers(url: str) -> bool:
    """Whether the web server at `url` answers HTTP (any status)."""
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except urllib.error.HTTPError:
        return True
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


@dataclass
class Stack:
    """The running FGLab: where to reach it, its database and the machine it runs on."""

    url: str
    db: Database
    store: Store
    fleet: Fleet
    machine: str
    root: Path
    implementations: dict[str, dict[str, Any]]

    def new_project(self, schema: dict[str, Any] = SCHEMA, capacity: float = 0.25) -> dict:
        """A project the machine implements (with program.py), ready to take experiments."""
        project_id = self.store.projects.create(f"browser-{uuid.uuid4().hex[:6]}", schema)
        project = self.store.projects.get(project_id)
        results = self.root / "results"
        self.implementations[str(project_id)] = {
            "cwd": str(self.root),
            "command": sys.executable,
            "args": [str(PROGRAM), "--results", str(results)],
            "options": "double-dash",
            "boolean": "mandatory",
            "capacity": capacity,
            "results": str(results),
        }
        self.fleet.write_projects(self.machine, self.implementations)
        wait_for(serves(self.db, self.machine, project), 20, f"machine to serve {project_id}")
        return project

    def submit(self, project: dict, **options: Any) -> str:
        """Submit one experiment over HTTP (as a script would); its ID."""
        body = {name: spec["default"] for name, spec in project["schema"].items()}
        body.update(options)
        request = urllib.request.Request(
            f"{self.url}/api/v1/projects/{project['_id']}/experiment?queue=true",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            return str(json.loads(answer.read())["_id"])

    def experiment(self, experiment_id: str) -> dict:
        return experiment(self.db, experiment_id)

    def wait_status(self, experiment_id: str, *statuses: str) -> dict:
        """The experiment document, once its status is one of `statuses`."""
        return wait_for(
            lambda: (doc := self.experiment(experiment_id)).get("_status") in statuses and doc,
            EXPERIMENT_TIMEOUT,
            f"experiment {experiment_id} to be {' or '.join(statuses)}",
        )

    def print_logs(self) -> None:
        self.fleet.print_logs()


def start_web(fleet: Fleet, password: str | None = None, **env: Any) -> tuple[Process, str]:
    """`fglab web` on a free port (`env`: more variables for it), once it answers."""
    port = free_port()
    process = fleet.start_web(port, password=password, **env)
    url = f"http://127.0.0.1:{port}"
    wait_for(
        lambda: answers(url + "/login") or not process.alive(),
        30,
        f"the web server at {url} to answer",
    )
    assert process.alive(), f"the web server exited:\n{process.output()[-3000:]}"
    return process, url


# Package scope, not session: the stack's scheduler consumes the suite's `fglab` queue, so
# alive after the browser tests it would take the messages of every later test's scheduler.
@pytest.fixture(scope="package")
def stack(mongo_uri: str, redis_url: str, tmp_path_factory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("browser")
    database = f"fglab_browser_{uuid.uuid4().hex[:8]}"
    settings = Settings(
        mongodb_uri=mongo_uri,
        mongodb_db=database,
        redis_url=redis_url,
        data_dir=root / "data",
        projects_file=root / "projects.json",
        lease_ttl=4.0,
        heartbeat=0.5,
        kill_grace=2.0,
    )
    client: MongoClient = MongoClient(mongo_uri, serverSelectionTimeoutMS=5000, tz_aware=True)
    db = client[database]
    store = Store(db)
    store.ensure_indexes()
    fleet = Fleet(settings, root / "fleet")
    name = machine_name()
    try:
        try:
            _, url = start_web(fleet)
            fleet.start_scheduler()
            fleet.start_machine(name, {}, concurrency=8)
            wait_for(live(db, name), 60, f"machine {name} to send its first heartbeat")
        except AssertionError:
            fleet.print_logs()  # pytest shows them with the setup error
            raise
        yield Stack(url, db, store, fleet, name, root, {})
    finally:
        fleet.stop_all()
        client.drop_database(database)
        client.close()


@pytest.fixture(scope="package")
def password_url(stack: Stack) -> Iterator[str]:
    """A second web server on the same database, with PASSWORD set."""
    fleet = Fleet(stack.fleet.settings, stack.root / "fleet-password")
    try:
        yield start_web(fleet, password=PASSWORD)[1]
    finally:
        fleet.stop_all()


@pytest.fixture
def project(stack: Stack) -> dict:
    """A fresh project with SCHEMA, implemented by the stack's machine."""
    return stack.new_project()


# Browser -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing; install Debian's Chromium "
            "(`apt-get install chromium`; .ci/run does it)",
            pytrace=False,
        )
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    expect.set_options(timeout=15_000)
    yield browser
    browser.close()


@pytest.fixture(scope="session")
def screenshots(pytestconfig: pytest.Config) -> Path:
    folder = pytestconfig.rootpath / "test-artifacts" / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    pytestconfig.stash[_SCREENSHOTS] = folder
    return folder


@pytest.fixture
def open_page(
    browser: Browser, stack: Stack, screenshots: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[..., Page]]:
    """Opens a page (a fresh browser context) at a URL of FGLab; the last page opened is
    saved as the test's screenshot when the test ends, pass or fail."""
    contexts = []

    def open_(path: str = "/", base_url: str | None = None) -> Page:
        context = browser.new_context(
            base_url=base_url or stack.url, viewport=VIEWPORT, accept_downloads=True
        )
        context.set_default_timeout(15_000)
        contexts.append(context)
        page = context.new_page()
        page.goto(path)
        return page

    yield open_
    if contexts and contexts[-1].pages:
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
        try:
            contexts[-1].pages[-1].screenshot(path=str(screenshots / f"{name}.png"))
        except PlaywrightError as e:  # an artifact, not a check: a crashed page has none
            print(f"no screenshot for {request.node.name}: {e}")
    for context in contexts:
        context.close()


@pytest.fixture
def page(open_page: Callable[..., Page]) -> Page:
    """A page at FGLab's home."""
    return open_page("/")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """When a test fails, show the tail of each stack process's log with it."""
    outcome = yield
    report = outcome.get_result()
    stack = item.funcargs.get("stack") if hasattr(item, "funcargs") else None
    if report.failed and call.when in ("setup", "call") and isinstance(stack, Stack):
        for process in stack.fleet.processes:
            report.sections.append((f"{process.name} log", process.output()[-4000:]))


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    folder = config.stash.get(_SCREENSHOTS, None)
    if folder is not None:
        terminalreporter.write_sep("-", "browser screenshots")
        terminalreporter.write_line(f"browser test screenshots are in {folder}")
