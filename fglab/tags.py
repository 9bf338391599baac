"""Tags: short labels a researcher puts on experiments (``baseline``, ``paper-v2``) to
find and group them later. Stored as ``_tags``, a list in the order given, each once.

A tag is 1 to 40 letters, digits or ``_ . : / + -``, starting with a letter or digit:
it goes into URLs (``?tag=``), CSV cells and page chips without quoting, and a comma
can separate several in one parameter.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MAX_TAGS = 20
MAX_LENGTH = 40
_TAG = re.compile(rf"^[^\W_][\w.:/+-]{{0,{MAX_LENGTH - 1}}}$")


class TagError(ValueError):
    """Tags that cannot be stored; the message names the bad one and says why."""


def parse_tags(values: object) -> list[str]:
    """Tags from a JSON list or query parameters (each may hold several, comma-separated):
    trimmed, each kept once in the order first given; TagError when one is not a tag."""
    if isinstance(values, str) or not isinstance(values, Iterable):
        raise TagError(f"tags are {values!r}; send a list of strings")
    tags: dict[str, None] = {}
    for value in values:
        if not isinstance(value, str):
            raise TagError(f"tag {value!r} is not a string")
        for part in value.split(","):
            tag = part.strip()
            if not tag:
                continue
            if not _TAG.match(tag):
                raise TagError(
                    f"tag {tag!r} is not allowed; use 1 to {MAX_LENGTH} letters, digits "
                    "or _ . : / + -, starting with a letter or digit"
                )
            tags[tag] = None
    if len(tags) > MAX_TAGS:
        raise TagError(f"{len(tags)} tags given; an experiment has at most {MAX_TAGS}")
    return list(tags)
