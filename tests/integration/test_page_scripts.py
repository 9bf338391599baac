"""The pages' scripts: native ES modules under fglab/web/static/js/, one entry script.

A browser runs a module script only when it is served with a JavaScript MIME type, and
follows its relative imports; both are checked here against the Flask app.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.html import page

STATIC = Path(__file__).resolve().parents[2] / "fglab" / "web" / "static"
MODULES = sorted(path.name for path in (STATIC / "js").glob("*.js"))
IMPORT = re.compile(r"""^import\s[^;]*?from\s+"(\./[^"]+)";""", re.M | re.S)


def test_every_page_loads_the_entry_module_once(client) -> None:
    head = page(client.get("/")).head
    scripts = [tag for tag in head.find_all("script") if tag.get("src")]
    assert [(tag["src"], tag.get("type")) for tag in scripts] == [("/assets/js/main.js", "module")]
    assert not (STATIC / "app.js").exists()


def test_every_module_is_served_as_javascript_and_its_imports_resolve(client) -> None:
    assert "main.js" in MODULES
    for name in MODULES:
        answer = client.get(f"/assets/js/{name}")
        source = answer.get_data(as_text=True)
        mimetype = answer.mimetype
        answer.close()
        assert answer.status_code == 200, name
        assert mimetype in ("text/javascript", "application/javascript"), (name, mimetype)
        assert source.startswith("/* "), f"{name} starts with a header comment"
        for target in IMPORT.findall(source):
            assert (STATIC / "js" / target).is_file(), f"{name} imports missing {target}"


def test_one_loadc3_for_every_page() -> None:
    sources = {name: (STATIC / "js" / name).read_text() for name in MODULES}
    defining = [name for name, text in sources.items() if "function loadC3" in text]
    assert defining == ["charts.js"]
    for name, text in sources.items():
        if "c3.generate" in text and name != "charts.js":
            assert "loadC3" in text or "drawTelemetry" in text, name
        assert "vendor/c3.min.js" not in text or name == "charts.js", name


def test_templates_have_no_inline_handlers() -> None:
    for template in (STATIC.parent / "templates").glob("*.html"):
        html = template.read_text()
        assert not re.search(r"\son[a-z]+\s*=", html), template.name
        assert not re.search(r"<script(?![^>]*(?:src=|application/json))", html), template.name
