"""What an experiments-table request asks for, as a MongoDB filter: pure, no I/O.

The table route and the CSV export read the same query parameters; this module turns
them into one filter document, so both always agree on which experiments match. Field
names come from researchers (score and option names), so each is checked against a
pattern before it reaches MongoDB: no ``$`` operators, no empty path parts.

Free text (`q`) is a case-insensitive regex, escaped, over the project's string and enum
options and the notes (and the ID, when `q` is one). An unanchored regex cannot use an
index: MongoDB reads every experiment of the project (found through the ``_project_id``
index) and tests a handful of short strings in each, so its cost grows linearly with the
project; the page then counts the matches the same way. That is fine for tens of
thousands of experiments a project; for far more, a text index (``$text``) over the same
fields is the way. Conditions on scores and options also scan unless a sort on that
field made its index (`Store._sort_index`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bson import ObjectId
from bson.errors import InvalidId

#: Fields a table sorts and filters by as they are.
PLAIN_FIELDS = ("_created", "_started", "_finished", "_status", "_id", "_machine_id")
#: A score or option: ``_scores.loss``, ``_options.lr``.
_NESTED = re.compile(r"^_(scores|options)\.[^.$\0]{1,200}$")
#: The code a run ran, as the worker records it (``_code.commit=3f2a9c1``).
_CODE = re.compile(r"^_code\.(commit|branch|repo|dirty|host|python|node)$")
#: A commit given short: matched as a prefix (4 to 39 hex digits; 40 is a whole one).
_SHORT_COMMIT = re.compile(r"^[0-9a-fA-F]{4,39}$")
#: A custom field written by the program: ``accuracy`` or ``Framework.Version``.
_CUSTOM = re.compile(r"^[^_.$\0][^.$\0]{0,199}(\.[^.$\0]{1,200}){0,3}$")
#: ``<field> <op> <value>``; the longest operators first so ``<=`` is not read as ``<``.
_CONDITION = re.compile(
    r"^\s*(?P<field>[^<>=!~\s][^<>=!~]*?)\s*(?P<op><=|>=|!=|=|<|>|~)\s*(?P<value>.*?)\s*$"
)
_OPERATORS = {"=": "$eq", "!=": "$ne", "<": "$lt", "<=": "$lte", ">": "$gt", ">=": "$gte"}
#: The integers MongoDB stores (BSON's int64).
_INT64 = (-(2**63), 2**63 - 1)
#: The most IDs one request may ask for (a page's visible rows).
MAX_IDS = 500
MAX_TEXT = 200


class QueryError(ValueError):
    """A table query parameter that cannot be used; the message names it and says why."""


def check_field(name: str, what: str = "field") -> str:
    """`name` when a table may sort or filter by it; QueryError otherwise."""
    if name in PLAIN_FIELDS or _NESTED.match(name) or _CODE.match(name) or _CUSTOM.match(name):
        return name
    raise QueryError(
        f"{what} is {name!r}; use one of {', '.join(PLAIN_FIELDS)}, "
        "_scores.<name>, _options.<name>, _code.commit or a custom field name"
    )


@dataclass(frozen=True)
class Condition:
    """One filter: `field` compared with `value` by `op` (``=``, ``<``, ``~`` for contains...)."""

    field: str
    op: str
    value: Any

    def to_mongo(self) -> dict[str, Any]:
        if self.op == "~":
            return {self.field: {"$regex": re.escape(str(self.value)), "$options": "i"}}
        if self.op == "^":  # a short commit (see parse_condition)
            return {self.field: {"$regex": "^" + re.escape(str(self.value))}}
        return {self.field: {_OPERATORS[self.op]: self.value}}


def parse_condition(text: str) -> Condition:
    """``_scores.loss<0.5``, ``_options.optimiser=adam``, ``model~cnn``, ``_code.commit=3f2a9c1``
    as a Condition.

    The value is read as JSON when it is JSON (numbers, true/false, null, "quoted"),
    else as text. Raises QueryError naming the condition.
    """
    match = _CONDITION.match(text)
    if match is None:
        raise QueryError(
            f"filter is {text!r}; write <field><op><value> with op one of "
            "=, !=, <, <=, >, >=, ~ (contains), e.g. _scores.loss<0.5"
        )
    name = check_field(match["field"], "filter field")
    raw = match["value"]
    try:
        value: Any = json.loads(raw)
    except ValueError:
        value = raw
    if isinstance(value, dict | list):
        value = raw
    whole = isinstance(value, int) and not isinstance(value, bool)
    if whole and not _INT64[0] <= value <= _INT64[1]:
        raise QueryError(
            f"filter value {raw} in {text!r} is beyond a 64-bit integer; use a number "
            f"from {_INT64[0]} to {_INT64[1]}, or a decimal such as {raw}.0"
        )
    if match["op"] == "~" and not isinstance(value, str):
        value = raw
    if name == "_id":
        value = _object_id(value)
    if name == "_code.commit":
        # Hex digits are text here (JSON would read "1234567" as a number); a short
        # commit matches the commits it starts.
        value = raw.lower()
        if match["op"] == "=" and _SHORT_COMMIT.match(raw):
            return Condition(name, "^", value)
    return Condition(name, match["op"], value)


@dataclass(frozen=True)
class TableQuery:
    """Which of a project's experiments a table or an export shows."""

    statuses: Collection[str] = ()
    text: str = ""
    conditions: Sequence[Condition] = ()
    ids: Sequence[ObjectId] | None = None
    #: Tags an experiment must all have.
    tags: Sequence[str] = ()
    #: Options whose values are strings (string and enum types): what `text` searches.
    text_options: Sequence[str] = field(default=())

    def to_mongo(self, project_id: ObjectId) -> dict[str, Any]:
        """The filter document: every part must hold. Project, statuses and IDs stay at
        the top level, where a query planner sees them; conditions go under ``$and``, as
        two of them may name one field."""
        query: dict[str, Any] = {"_project_id": project_id}
        if self.statuses:
            query["_status"] = {"$in": sorted(self.statuses)}
        if self.ids is not None:
            query["_id"] = {"$in": list(self.ids)}
        if self.tags:
            query["_tags"] = {"$all": list(self.tags)}
        if self.text:
            query["$or"] = self._text_matches()
        if self.conditions:
            query["$and"] = [condition.to_mongo() for condition in self.conditions]
        return query

    def _text_matches(self) -> list[dict[str, Any]]:
        pattern = {"$regex": re.escape(self.text), "$options": "i"}
        fields = ["_notes", *(f"_options.{name}" for name in self.text_options)]
        matches: list[dict[str, Any]] = [{name: pattern} for name in fields]
        if ObjectId.is_valid(self.text):
            matches.append({"_id": ObjectId(self.text)})
        return matches


def text_options(schema: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The options free text searches: those whose values are strings."""
    return [name for name, spec in schema.items() if spec.get("type") in {"string", "enum"}]


def parse_ids(values: Sequence[str]) -> list[ObjectId]:
    """IDs given as repeated parameters or comma-separated, at most `MAX_IDS`."""
    ids = [
        _object_id(part.strip()) for value in values for part in value.split(",") if part.strip()
    ]
    if len(ids) > MAX_IDS:
        raise QueryError(f"ids has {len(ids)} IDs; ask for at most {MAX_IDS} at a time")
    return ids


def check_text(value: str) -> str:
    if len(value) > MAX_TEXT:
        raise QueryError(f"q has {len(value)} characters; use at most {MAX_TEXT}")
    return value.strip()


def _object_id(value: object) -> ObjectId:
    try:
        return ObjectId(str(value))
    except (InvalidId, TypeError):
        raise QueryError(f"ID {value!r} is not a valid ObjectId (24 hex digits)") from None
