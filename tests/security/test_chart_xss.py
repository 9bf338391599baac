"""Stored chart settings that are HTML (issue 17, item 2), and the pages' Content-Security-
Policy.

C3's tooltip puts ``data.colors`` into its HTML unescaped, so an experiment's ``_charts``
could carry script into every viewer's session, whether it came in by
``PUT /api/v1/experiments/{id}`` or from a program's results JSON. The charts route sends
only the C3 settings FGLab draws (the stored document stays as written), and every page
runs under ``script-src 'self'``: no inline code, no ``on*=`` attributes.

The browser checks run Debian's Chromium (Playwright) in a thread of their own: Playwright's
sync API allows one instance per thread, and the browser suite's may be alive in this one.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest
from bs4 import BeautifulSoup
from playwright.sync_api import Browser, ConsoleMessage, Page, expect, sync_playwright

from config import Settings
from fglab.app import create_app
from fglab.security_headers import CONTENT_SECURITY_POLICY
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, VIEWPORT
from tests.html import page as parsed
from tests.integration.fleet import (
    SCHEMA,
    experiment,
    implementation,
    live,
    machine_name,
    new_project,
    status_of,
    submit,
)
from tests.security.web import send, serve
from tests.waiting import wait_for

T = TypeVar("T")

#: The attack: C3 builds the tooltip's colour swatch as ``<span style='background-color:
#: <colour>'>``; this colour closes it and adds an image whose error handler runs.
PAYLOAD_COLOUR = "red'></span><img id=pwned src=x onerror=window.__pwned=1>"
#: HTML where the pages show text: a series name, a note, a custom field, a log line.
PAYLOAD_TEXT = "<img id=pwned src=x onerror=window.__pwned=2>"


def payload_chart(series: str = "loss", code: bool = True) -> dict[str, Any]:
    """The attack's `_charts` in FGLab's shape: a bad colour and a tooltip shown at once
    (issue 17's own), HTML in a label; with `code`, also settings C3 would treat as code
    or fetch (``onrendered``, ``tooltip.contents``, ``data.url``)."""
    chart: dict[str, Any] = {
        "columnNames": [series, "step"],
        "data": {
            "xs": {series: "step"},
            "columns": [[0.9, 0.5, 0.3], [1, 2, 3]],
            "colors": {series: PAYLOAD_COLOUR},
        },
        "tooltip": {"init": {"show": True}},
        "axis": {"y": {"label": PAYLOAD_TEXT}},
    }
    if code:
        chart["data"]["url"] = "/api/v1/tokens"
        chart["tooltip"]["contents"] = PAYLOAD_TEXT
        chart["onrendered"] = "window.__pwned = 3"
    return chart


#: A valid chart: kept as written (its colour included) and drawn.
GOOD_CHART: dict[str, Any] = {
    "columnNames": ["loss", "step"],
    "data": {
        "xs": {"loss": "step"},
        "columns": [[0.9, 0.5, 0.3], [1, 2, 3]],
        "colors": {"loss": "#ff7f0e"},
    },
    "axis": {"x": {"label": "step"}, "y": {"label": "loss"}},
}

#: A program for the machine: prints the payload, writes it as its results JSON.
PROGRAM = """
import json, sys
from pathlib import Path

args = sys.argv[1:]
opts = {}
for i, arg in enumerate(args):
    if arg.startswith("--") and "=" in arg:
        opts[arg[2:].split("=", 1)[0]] = arg.split("=", 1)[1]
    elif arg.startswith("--") and i + 1 < len(args):
        opts[arg[2:]] = args[i + 1]
folder = Path(opts["results"]) / opts["_id"]
folder.mkdir(parents=True, exist_ok=True)
print(TEXT, flush=True)
(folder / "chart.json").write_text(json.dumps({"_charts": CHART}))
(folder / "notes.json").write_text(json.dumps({"_notes": TEXT, "Framework": TEXT}))
"""

EXPECT_MS = 15_000
RUN_TIMEOUT = 60.0


def inline_code(document: BeautifulSoup) -> list[str]:
    """What in an HTML page would run as code outside FGLab's script files: inline
    scripts other than JSON data, ``on*=`` attributes, ``javascript:`` URLs."""
    found = []
    for script in document.find_all("script"):
        if script.get("src"):
            continue
        if script.get("type") != "application/json":
            found.append(f"inline script: {script.get_text()[:80]!r}")
            continue
        json.loads(script.get_text())  # data, and whole
    for tag in document.find_all(True):
        for name, value in tag.attrs.items():
            if name.lower().startswith("on"):
                found.append(f"<{tag.name} {name}={value!r}>")
            if name in ("href", "src", "action") and "javascript:" in str(value).lower():
                found.append(f"<{tag.name} {name}={value!r}>")
    return found


def assert_no_payload(document: BeautifulSoup) -> None:
    assert document.find(id="pwned") is None
    assert inline_code(document) == []


def assert_headers(headers: Any) -> None:
    assert headers.get("Content-Security-Policy") == CONTENT_SECURITY_POLICY
    assert headers.get("X-Content-Type-Options") == "nosniff"
    assert headers.get("Referrer-Policy") == "same-origin"


def assert_sanitized(charts: list[dict[str, Any]]) -> None:
    """The charts answer holds the payload's data and texts but none of its settings."""
    [chart] = charts
    assert chart["axis"] == {"y": {"label": PAYLOAD_TEXT}}  # a text: C3 draws it as SVG text
    settings = json.dumps({key: value for key, value in chart.items() if key != "axis"})
    for bad in ("pwned", "onerror", "<img", "/api/v1/tokens", "onrendered", "contents"):
        assert bad not in settings, bad
    assert chart["data"]["colors"] == {}
    assert chart["tooltip"] == {}
    assert "url" not in chart["data"]
    assert chart["data"]["columns"][0][1:] == [0.9, 0.5, 0.3]


@pytest.fixture
def screenshots(pytestconfig: pytest.Config) -> Path:
    """Where the browser tests leave their screenshots (artifacts to look at)."""
    folder = pytestconfig.rootpath / "test-artifacts" / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_a_payload_put_through_the_api_is_kept_but_never_sent_to_a_page(
    client, store, db, caplog
) -> None:
    project = new_project(store, SCHEMA)
    [experiment_id] = store.new_experiments(project["_id"], [{"mode": "write", "until": "none"}])
    chart = payload_chart()

    answer = client.put(f"/api/v1/experiments/{experiment_id}", json={"_charts": chart})
    assert answer.status_code == 200, answer.json
    stored = db.experiments.find_one({"_id": experiment_id})["_charts"]
    assert stored == chart  # kept as written

    with caplog.at_level(logging.WARNING, logger="fglab.api.charts"):
        charts = client.get(f"/api/v1/experiments/{experiment_id}/charts")
    assert charts.status_code == 200
    assert_headers(charts.headers)
    assert_sanitized(charts.json)
    [warning] = [r.getMessage() for r in caplog.records if r.name == "fglab.api.charts"]
    assert warning.startswith(
        f"Experiment {experiment_id}: _charts settings left out before they reach a browser: "
    )
    for part in (
        "chart 0: data.colors.loss: ",
        "is not a colour (#rgb, #rrggbb, #rrggbbaa or a CSS colour name)",
        "chart 0: data.url: not a chart setting FGLab passes to C3.js",
        "chart 0: tooltip.init: not a chart setting",
        "chart 0: onrendered: not a chart setting",
    ):
        assert part in warning, part

    # The raw document is JSON, never sniffed as HTML; the page's data holds no chart.
    raw = client.get(f"/api/v1/experiments/{experiment_id}")
    assert raw.mimetype == "application/json"
    assert raw.headers["X-Content-Type-Options"] == "nosniff"
    page = client.get(f"/experiments/{experiment_id}")
    assert page.status_code == 200
    assert_headers(page.headers)
    document = parsed(page)
    assert_no_payload(document)
    data = json.loads(document.find(id="page-data").get_text())
    assert data["has_charts"] is True
    assert "pwned" not in json.dumps(data)
    assert db.experiments.find_one({"_id": experiment_id})["_charts"] == chart  # unchanged


def _program(tmp_path: Path, chart: dict[str, Any]) -> Path:
    program = tmp_path / "payload.py"
    head = f"CHART = json.loads({json.dumps(json.dumps(chart))})\nTEXT = {PAYLOAD_TEXT!r}\n"
    body = PROGRAM.replace("import json, sys\n", "import json, sys\n" + head, 1)
    program.write_text(body)
    return program


@pytest.fixture
def runs(client, db, store, fleet, project, tmp_path) -> Iterator[dict[str, Any]]:
    """A real worker run whose results JSON and log are the payload (A); in a project no
    machine serves, an experiment whose payload came by PUT (B) and one with a valid chart
    (C); and `fglab web` serving them all."""
    name = machine_name()
    program = _program(tmp_path, payload_chart())
    results = tmp_path / "results"
    impl = implementation(tmp_path, args=[str(program), "--results", str(results)])
    fleet.start_scheduler()
    fleet.start_machine(name, {str(project["_id"]): impl})
    wait_for(live(db, name), timeout=30, what=f"machine {name} to register")
    run_id = submit(client, project, queue=False)
    wait_for(
        lambda: status_of(db, run_id) == "success",
        timeout=RUN_TIMEOUT,
        what=f"experiment {run_id} to succeed",
    )
    process, url = serve(fleet)
    other = new_project(store, SCHEMA, prefix="xss")
    put_id, good_id = store.new_experiments(other["_id"], [{"mode": "a"}, {"mode": "b"}])
    for experiment_id, chart in (
        (put_id, payload_chart(PAYLOAD_TEXT, code=False)),
        (good_id, GOOD_CHART),
    ):
        answer = send(
            f"{url}/api/v1/experiments/{experiment_id}",
            "PUT",
            json.dumps({"_charts": chart, "_notes": PAYLOAD_TEXT}).encode(),
            {"Content-Type": "application/json"},
        )
        assert answer.status == 200, answer
    yield {
        "url": url,
        "web": process,
        "run": run_id,
        "put": str(put_id),
        "good": str(good_id),
        "project": str(other["_id"]),
    }


def test_a_payload_from_a_results_json_is_kept_but_never_sent_to_a_page(db, runs) -> None:
    url, run_id = runs["url"], runs["run"]
    doc = experiment(db, run_id)
    assert doc["_charts"] == payload_chart()  # kept as the program wrote it
    assert doc["_notes"] == PAYLOAD_TEXT

    charts = send(f"{url}/api/v1/experiments/{run_id}/charts")
    assert charts.status == 200
    assert_headers(charts.headers)
    assert_sanitized(charts.json())
    wait_for(
        lambda: f"Experiment {run_id}: _charts settings left out" in runs["web"].output(),
        10,
        "the web server to log what it left out",
    )
    page = send(f"{url}/experiments/{run_id}")
    assert page.status == 200
    assert_headers(page.headers)
    assert_no_payload(BeautifulSoup(page.body.decode(), "html.parser"))
    assert experiment(db, run_id)["_charts"] == doc["_charts"]


class Watched:
    """A page with its console errors, uncaught exceptions, failed requests and CSP
    violations (a listener added before any of the page's scripts run)."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.errors: list[str] = []
        page.add_init_script(
            "window.__violations = [];"
            "document.addEventListener('securitypolicyviolation', (e) =>"
            " window.__violations.push(`${e.violatedDirective} ${e.blockedURI}"
            " ${e.sourceFile}:${e.lineNumber}`));"
        )
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.errors.append(f"pageerror: {error}"))
        page.on(
            "response",
            lambda r: r.status >= 400 and self.errors.append(f"HTTP {r.status}: {r.url}"),
        )

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"console: {message.text} ({message.location})")

    def violations(self) -> list[str]:
        return list(self.page.evaluate("window.__violations"))

    def assert_untouched(self) -> None:
        """The payload did not run, and nothing was refused or failed. (C3 sets the
        tooltip's HTML at once: had it held the payload, #pwned would be there now.)"""
        assert self.page.locator("#pwned").count() == 0
        assert self.page.evaluate("window.__pwned") is None
        assert self.violations() == []
        assert self.errors == []


def in_chromium(work: Callable[[Browser], T]) -> T:
    """Run `work` with a fresh Chromium in a thread of its own (see the module's doc)."""

    def run() -> T:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                return work(browser)
            finally:
                browser.close()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(run).result()


def open_watched(browser: Browser, url: str) -> Watched:
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(EXPECT_MS)
    watched = Watched(context.new_page())
    watched.page.goto(url)
    return watched


def hover_chart(page: Page, holder: str) -> None:
    """Move the mouse onto a point of the first chart in `holder` (C3 shows the tooltip
    only within a few pixels of one) and wait for the tooltip."""
    chart = page.locator(f"{holder} .c3").first
    expect(chart.locator("svg")).to_be_visible(timeout=EXPECT_MS)
    chart.scroll_into_view_if_needed()
    point = chart.locator("circle.c3-circle-1").first  # there, if transparent, when hidden
    x, y = point.evaluate(
        "c => { const r = c.getBoundingClientRect();"
        " return [r.x + r.width / 2, r.y + r.height / 2]; }"
    )
    page.mouse.move(x - 20, y)
    page.mouse.move(x, y, steps=4)
    expect(chart.locator(".c3-tooltip-container")).to_be_visible(timeout=EXPECT_MS)


def test_the_payload_does_not_run_in_a_browser(db, runs, screenshots) -> None:
    url = runs["url"]
    stored = {k: experiment(db, runs[k])["_charts"] for k in ("run", "put", "good")}

    def visit(browser: Browser) -> None:
        for key, series in (("put", PAYLOAD_TEXT), ("run", "loss")):
            watched = open_watched(browser, f"{url}/experiments/{runs[key]}")
            page = watched.page
            hover_chart(page, "#charts")
            tooltip = page.locator("#charts .c3-tooltip-container")
            expect(tooltip).to_contain_text(series, timeout=EXPECT_MS)  # a name, as text
            expect(page.locator("#charts .c3-axis-y-label")).to_have_text(PAYLOAD_TEXT)
            expect(page.locator("#notes")).to_have_value(PAYLOAD_TEXT)  # shown as text
            if key == "run":  # the kept log, its line as text
                expect(page.locator("#logs")).to_contain_text(PAYLOAD_TEXT, timeout=EXPECT_MS)
            watched.assert_untouched()
            page.context.close()

        ids = ",".join((runs["put"], runs["good"]))
        watched = open_watched(browser, f"{url}/projects/{runs['project']}/compare?ids={ids}")
        hover_chart(watched.page, "#compare-charts")
        watched.assert_untouched()
        watched.page.context.close()

        # A valid chart draws with its own colour: the allow-list kept it.
        watched = open_watched(browser, f"{url}/experiments/{runs['good']}")
        page = watched.page
        hover_chart(page, "#charts")
        line = page.locator("#charts path.c3-line-loss")
        expect(line).to_have_css("stroke", "rgb(255, 127, 14)")
        watched.assert_untouched()
        page.screenshot(path=str(screenshots / "security_valid_chart.png"))
        page.context.close()

    in_chromium(visit)
    assert {k: experiment(db, runs[k])["_charts"] for k in stored} == stored
    assert send(f"{url}/").status == 200  # the server still answers


def test_the_docs_page_runs_under_the_policy_and_the_policy_blocks_inline_code(
    fleet, store, screenshots
) -> None:
    """Swagger UI starts from FGLab's own script file; and should HTML with a handler ever
    reach a page, the browser refuses to run it (the policy is the second wall)."""
    _, url = serve(fleet)
    project = new_project(store, SCHEMA)
    [experiment_id] = store.new_experiments(project["_id"], [{"mode": "write", "until": "none"}])

    def visit(browser: Browser) -> list[str]:
        watched = open_watched(browser, f"{url}/api/docs")
        page = watched.page
        expect(page.locator(".swagger-ui .info .title")).to_contain_text("FGLab", timeout=EXPECT_MS)
        # "Try it out" still calls the API from the page (connect-src 'self').
        operation = page.locator("#operations-projects-get_api_v1_projects")
        operation.locator(".opblock-summary").click()
        operation.get_by_role("button", name="Try it out").click()
        operation.get_by_role("button", name="Execute").click()
        expect(
            operation.locator(".live-responses-table .response .response-col_status")
        ).to_have_text("200", timeout=EXPECT_MS)
        watched.assert_untouched()
        page.screenshot(path=str(screenshots / "security_api_docs.png"))
        page.context.close()

        watched = open_watched(browser, f"{url}/experiments/{experiment_id}")
        page = watched.page
        expect(page.locator("body")).to_have_attribute("data-page", "experiment")
        page.evaluate(
            "document.body.insertAdjacentHTML('beforeend',"
            ' \'<img id=injected src=data:, onerror="window.__pwned = 4">'
            '<a id=link href="javascript:window.__pwned = 5">x</a>\')'
        )
        expect(page.locator("#injected")).to_be_attached()
        wait_for(watched.violations, 10, "the browser to refuse the inline handler")
        page.locator("#link").click()
        wait_for(lambda: len(watched.violations()) >= 2, 10, "the javascript: URL refused")
        assert page.evaluate("window.__pwned") is None
        violations = watched.violations()
        page.context.close()
        return violations

    violations = in_chromium(visit)
    assert all(v.startswith("script-src") for v in violations), violations


def test_every_page_answers_with_the_policy_and_runs_no_inline_code(
    settings: Settings, store, client
) -> None:
    project = new_project(store, SCHEMA)
    [experiment_id] = store.new_experiments(project["_id"], [{"mode": "write", "until": "none"}])
    store.set_fields(experiment_id, {"_charts": GOOD_CHART, "_notes": PAYLOAD_TEXT})
    sweep = client.post(
        f"/api/v1/projects/{project['_id']}/sweeps",
        json={"method": "grid", "space": {"mode": {"values": ["a", "b"]}}},
    )
    assert sweep.status_code == 201, sweep.json
    machine = client.post("/api/v1/machines", json={"hostname": "csp-machine"})
    assert machine.status_code == 201, machine.json
    token = client.post("/api/v1/tokens", json={"name": PAYLOAD_TEXT})  # shown on /tokens
    assert token.status_code == 201, token.json
    values = {
        "project_id": str(project["_id"]),
        "experiment_id": str(experiment_id),
        "sweep_id": sweep.json["_id"],
        "machine_id": "csp-machine",
    }
    app = client.application
    pages = sorted(
        {
            rule.rule
            for rule in app.url_map.iter_rules()
            if "GET" in (rule.methods or ())
            and rule.endpoint.split(".")[0] in ("pages", "docs")
            and rule.endpoint != "pages.static"
        }
    )
    assert {
        "/",
        "/projects/<project_id>",
        "/experiments/<experiment_id>",
        "/projects/<project_id>/compare",
        "/sweeps/<sweep_id>",
        "/machines/<machine_id>",
        "/tokens",
        "/api/docs",
    } <= set(pages)
    for rule in pages:
        path = rule
        for name, value in values.items():
            path = path.replace(f"<{name}>", value)
        if rule.endswith("/compare"):
            path += f"?ids={experiment_id}"
        answer = client.get(path)
        assert answer.status_code == 200, (path, answer.status_code)
        assert_headers(answer.headers)
        assert_no_payload(parsed(answer))

    # The login page, and a locked server's refusals, under the same policy.
    locked = create_app(settings.with_changes(password="s3cret-csp"), store=store)
    locked.config["TESTING"] = True
    browser = locked.test_client()
    login = browser.get("/login")
    assert login.status_code == 200
    assert_headers(login.headers)
    assert_no_payload(parsed(login))
    assert parsed(login).find("form")["action"] == "/login"
    for path, status in (("/", 302), ("/api/v1/projects", 401), ("/api/docs", 401)):
        answer = browser.get(path)
        assert answer.status_code == status, path
        assert_headers(answer.headers)

    # API answers, files, errors.
    for path in ("/api/v1/projects", "/api/openapi.json", "/assets/js/main.js", "/no-such-page"):
        answer = client.get(path)
        assert_headers(answer.headers)
        answer.close()
    assert client.get("/api/v1/experiments/0123456789abcdef01234567").status_code == 404
    assert store.get_experiment(str(experiment_id))["_notes"] == PAYLOAD_TEXT
