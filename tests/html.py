"""Reading FGLab's pages as documents: tests find elements, they never match HTML text.

A page is parsed with BeautifulSoup (Python's own ``html.parser``, so no extra parser
is needed); tests then look elements up by id, tag, class and visible text, as a reader
of the page would.
"""

from __future__ import annotations

import json
from typing import Any

from bs4 import BeautifulSoup, Tag


def page(response: Any) -> BeautifulSoup:
    """The parsed document of an HTML response (which must be HTML)."""
    assert response.mimetype == "text/html", response.mimetype
    return BeautifulSoup(response.get_data(as_text=True), "html.parser")


def text(element: Tag) -> str:
    """What a reader sees of `element`: its text with runs of whitespace made one space."""
    return " ".join(element.get_text(" ").split())


def find(scope: Tag, selector: str) -> Tag:
    """The first element matching the CSS `selector`; fails naming it when there is none."""
    element = scope.select_one(selector)
    assert element is not None, f"no element matches {selector!r}"
    return element


def with_text(scope: Tag, name: str, visible: str) -> Tag:
    """The first `name` element whose visible text contains `visible`."""
    for element in scope.find_all(name):
        if visible in text(element):
            return element
    raise AssertionError(f"no <{name}> shows {visible!r}")


def facts(scope: Tag) -> dict[str, Tag]:
    """The rows of every ``table.facts``: the header's text -> its value cell."""
    rows: dict[str, Tag] = {}
    for row in scope.select("table.facts tr"):
        header, cell = row.find("th"), row.find("td")
        if header is not None and cell is not None:
            rows[text(header)] = cell
    return rows


def page_data(document: BeautifulSoup) -> Any:
    """The JSON a page hands its script (``<script type="application/json" id="page-data">``)."""
    block = document.find("script", id="page-data", type="application/json")
    assert block is not None, "page has no page-data block"
    return json.loads(block.get_text())


def classes(element: Tag) -> list[str]:
    """The element's classes, in order ([] when it has none)."""
    value = element.get("class")
    return list(value) if value else []
