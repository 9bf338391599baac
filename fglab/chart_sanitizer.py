"""The C3.js settings a chart may carry to a browser: an allow-list, checked recursively.

``_charts`` is written by programs and API users, and the pages hand it to
``c3.generate``. C3 builds its tooltip as HTML and puts colours into it unescaped (a
``data.colors`` value of ``red'><img src=x onerror=...>`` runs script in every viewer's
session), and some settings are code or HTML templates (``tooltip.contents``,
``*.format``, ``data.url``). So only the settings listed here get through, each of the
type C3 expects: numbers, strings, true/false, fixed choices, colours that are ``#hex``
or a CSS named colour. Everything else is left out, and each part left out is described,
so the caller can log what it dropped. Stored charts are never changed.

Texts (names, labels, titles) may hold any characters: C3 sets them as SVG text or
escapes them in its tooltip; only colours reach its HTML as they are.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["NAMED_COLOURS", "is_colour", "sanitize_chart"]

#: The CSS Color Module Level 4 named colours (148), as C3 and every browser accept them.
NAMED_COLOURS: frozenset[str] = frozenset(
    (
        "aliceblue", "antiquewhite", "aqua", "aquamarine", "azure", "beige", "bisque",
        "black", "blanchedalmond", "blue", "blueviolet", "brown", "burlywood", "cadetblue",
        "chartreuse", "chocolate", "coral", "cornflowerblue", "cornsilk", "crimson", "cyan",
        "darkblue", "darkcyan", "darkgoldenrod", "darkgray", "darkgreen", "darkgrey",
        "darkkhaki", "darkmagenta", "darkolivegreen", "darkorange", "darkorchid", "darkred",
        "darksalmon", "darkseagreen", "darkslateblue", "darkslategray", "darkslategrey",
        "darkturquoise", "darkviolet", "deeppink", "deepskyblue", "dimgray", "dimgrey",
        "dodgerblue", "firebrick", "floralwhite", "forestgreen", "fuchsia", "gainsboro",
        "ghostwhite", "gold", "goldenrod", "gray", "green", "greenyellow", "grey",
        "honeydew", "hotpink", "indianred", "indigo", "ivory", "khaki", "lavender",
        "lavenderblush", "lawngreen", "lemonchiffon", "lightblue", "lightcoral",
        "lightcyan", "lightgoldenrodyellow", "lightgray", "lightgreen", "lightgrey",
        "lightpink", "lightsalmon", "lightseagreen", "lightskyblue", "lightslategray",
        "lightslategrey", "lightsteelblue", "lightyellow", "lime", "limegreen", "linen",
        "magenta", "maroon", "mediumaquamarine", "mediumblue", "mediumorchid",
        "mediumpurple", "mediumseagreen", "mediumslateblue", "mediumspringgreen",
        "mediumturquoise", "mediumvioletred", "midnightblue", "mintcream", "mistyrose",
        "moccasin", "navajowhite", "navy", "oldlace", "olive", "olivedrab", "orange",
        "orangered", "orchid", "palegoldenrod", "palegreen", "paleturquoise",
        "palevioletred", "papayawhip", "peachpuff", "peru", "pink", "plum", "powderblue",
        "purple", "rebeccapurple", "red", "rosybrown", "royalblue", "saddlebrown", "salmon",
        "sandybrown", "seagreen", "seashell", "sienna", "silver", "skyblue", "slateblue",
        "slategray", "slategrey", "snow", "springgreen", "steelblue", "tan", "teal",
        "thistle", "tomato", "turquoise", "violet", "wheat", "white", "whitesmoke",
        "yellow", "yellowgreen",
    )
)  # fmt: skip

# fullmatch, not `$`: `$` also matches before a trailing newline.
_HEX_COLOUR = re.compile(r"#[0-9a-fA-F]{3,8}")
# A d3 time format such as "%H:%M" or "%Y-%m-%d": directives and plain separators only.
_TIME_FORMAT_RE = re.compile(r"[%A-Za-z0-9 :./,_-]{1,64}")

_DROP: Any = object()  # what a check answers for a value it does not let through


def is_colour(value: object) -> bool:
    """Whether `value` is ``#`` and 3 to 8 hex digits, or a CSS named colour (any case)."""
    return isinstance(value, str) and (
        _HEX_COLOUR.fullmatch(value) is not None or value.lower() in NAMED_COLOURS
    )


def sanitize_chart(config: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The part of the C3 config `config` that may reach a browser, and a line per part
    left out (``"data.colors.l: 'red'>...' is not a colour ..."``).

    The input is not modified; what is kept is copied. A config that is not an object
    comes back as ``{}``.
    """
    if not isinstance(config, Mapping):
        return {}, [f"the chart is {_short(config)}, not an object (a C3.js config)"]
    dropped: list[str] = []
    return _CHART.clean(config, "", dropped), dropped


class _Check(Protocol):
    """One rule of the allow-list: `clean` answers the allowed copy of a value, or _DROP
    after noting why in `dropped`."""

    @property
    def expected(self) -> str: ...

    def clean(self, value: object, path: str, dropped: list[str]) -> Any: ...


@dataclass(frozen=True)
class _Leaf:
    expected: str
    accepts: Callable[[object], bool]

    def clean(self, value: object, path: str, dropped: list[str]) -> Any:
        if self.accepts(value):
            return value
        dropped.append(f"{path}: {_short(value)} is not {self.expected}")
        return _DROP


@dataclass(frozen=True)
class _Fields:
    """An object with known keys; any other key is left out."""

    fields: Mapping[str, _Check]
    expected: str = "an object"

    def clean(self, value: object, path: str, dropped: list[str]) -> Any:
        if not isinstance(value, Mapping):
            dropped.append(f"{path}: {_short(value)} is not {self.expected}")
            return _DROP
        out = {}
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            check = self.fields.get(key) if isinstance(key, str) else None
            if check is None:
                dropped.append(f"{where}: not a chart setting FGLab passes to C3.js")
                continue
            kept = check.clean(item, where, dropped)
            if kept is not _DROP:
                out[key] = kept
        return out


@dataclass(frozen=True)
class _MapOf:
    """An object keyed by series names (any string), each value checked alike."""

    item: _Check

    @property
    def expected(self) -> str:
        return "an object keyed by series name"

    def clean(self, value: object, path: str, dropped: list[str]) -> Any:
        if not isinstance(value, Mapping):
            dropped.append(f"{path}: {_short(value)} is not {self.expected}")
            return _DROP
        out = {}
        for key, item in value.items():
            kept = self.item.clean(item, f"{path}.{key}", dropped)
            if kept is not _DROP:
                out[key] = kept
        return out


@dataclass(frozen=True)
class _ListOf:
    item: _Check

    @property
    def expected(self) -> str:
        return "a list"

    def clean(self, value: object, path: str, dropped: list[str]) -> Any:
        if not isinstance(value, list):
            dropped.append(f"{path}: {_short(value)} is not {self.expected}")
            return _DROP
        kept = (self.item.clean(item, f"{path}[{i}]", dropped) for i, item in enumerate(value))
        return [item for item in kept if item is not _DROP]


@dataclass(frozen=True)
class _Either:
    """The first of `options` that lets the value through (C3 takes several shapes)."""

    options: Sequence[_Check]

    @property
    def expected(self) -> str:
        return " or ".join(option.expected for option in self.options)

    def clean(self, value: object, path: str, dropped: list[str]) -> Any:
        for option in self.options:
            notes: list[str] = []
            kept = option.clean(value, path, notes)
            if kept is not _DROP:
                dropped.extend(notes)
                return kept
        dropped.append(f"{path}: {_short(value)} is not {self.expected}")
        return _DROP


def _choice(*options: str) -> _Leaf:
    allowed = frozenset(options)
    return _Leaf("one of " + ", ".join(map(repr, options)), lambda v: v in allowed)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_column(value: object) -> bool:
    """A C3 column: its name, then numbers (null for a gap)."""
    return (
        isinstance(value, list)
        and bool(value)
        and isinstance(value[0], str)
        and all(v is None or _is_number(v) for v in value[1:])
    )


_TEXT = _Leaf("a string", lambda v: isinstance(v, str))
_NUMBER = _Leaf("a finite number", _is_number)
_FLAG = _Leaf("true or false", lambda v: isinstance(v, bool))
_COLOUR = _Leaf("a colour (#rgb, #rrggbb, #rrggbbaa or a CSS colour name)", is_colour)
_TIME_FORMAT = _Leaf(
    "a d3 time format such as '%H:%M'",
    lambda v: isinstance(v, str) and _TIME_FORMAT_RE.fullmatch(v) is not None,
)
_COLUMN = _Leaf("a column (its name, then numbers)", _is_column)
#: A place on an axis: a number, or a date string on a timeseries axis.
_POSITION = _Either((_NUMBER, _TEXT))
_SIDES = _Fields({"top": _NUMBER, "right": _NUMBER, "bottom": _NUMBER, "left": _NUMBER})
_SERIES_TYPE = _choice(
    "line", "spline", "step", "area", "area-spline", "area-step", "bar", "scatter", "pie",
    "donut", "gauge",
)  # fmt: skip
_CURVE = _choice(
    "linear", "linear-closed", "basis", "basis-open", "basis-closed", "bundle", "cardinal",
    "cardinal-open", "cardinal-closed", "monotone", "step", "step-before", "step-after",
)  # fmt: skip
_NAMES_OR_FLAG = _Either((_FLAG, _ListOf(_TEXT)))

_DATA = _Fields(
    {
        "columns": _ListOf(_COLUMN),
        "x": _TEXT,
        "xs": _MapOf(_TEXT),
        "xFormat": _TEXT,  # how C3 parses x strings (d3.timeParse): never shown
        "xLocaltime": _FLAG,
        "xSort": _FLAG,
        "names": _MapOf(_TEXT),
        "type": _SERIES_TYPE,
        "types": _MapOf(_SERIES_TYPE),
        "colors": _MapOf(_COLOUR),
        "axes": _MapOf(_choice("y", "y2")),
        "groups": _ListOf(_ListOf(_TEXT)),
        "order": _choice("asc", "desc"),
        "hide": _NAMES_OR_FLAG,
        "labels": _FLAG,  # the object form carries format functions
        "empty": _Fields({"label": _Fields({"text": _TEXT})}),
    }
)
_LABEL_POSITION = _choice(
    "inner-right", "inner-center", "inner-left", "outer-right", "outer-center", "outer-left",
    "inner-top", "inner-middle", "inner-bottom", "outer-top", "outer-middle", "outer-bottom",
)  # fmt: skip
_LABEL = _Either((_TEXT, _Fields({"text": _TEXT, "position": _LABEL_POSITION})))
_TICK: dict[str, _Check] = {
    "count": _NUMBER,
    "values": _ListOf(_POSITION),
    "rotate": _NUMBER,
    "outer": _FLAG,
}
_AXIS: dict[str, _Check] = {
    "show": _FLAG,
    "label": _LABEL,
    "min": _POSITION,
    "max": _POSITION,
    "padding": _Either((_NUMBER, _SIDES)),
    "inner": _FLAG,
}
_AXIS_X = _Fields(
    {
        **_AXIS,
        "type": _choice("indexed", "category", "timeseries"),
        "categories": _ListOf(_TEXT),
        "localtime": _FLAG,
        "height": _NUMBER,
        "tick": _Fields(
            {
                **_TICK,
                # A string format is a d3 time format, read on timeseries axes only.
                "format": _TIME_FORMAT,
                "culling": _Either((_FLAG, _Fields({"max": _NUMBER}))),
                "multiline": _FLAG,
                "fit": _FLAG,
                "centered": _FLAG,
                "width": _NUMBER,
            }
        ),
    }
)
# No tick.format on y: C3 calls it as a function there.
_AXIS_Y = _Fields(
    {
        **_AXIS,
        "type": _choice("linear", "timeseries"),
        "inverted": _FLAG,
        "center": _NUMBER,
        "tick": _Fields(_TICK),
    }
)
_GRID_LINES = _ListOf(
    _Fields({"value": _POSITION, "text": _TEXT, "position": _choice("start", "middle", "end")})
)

#: Every C3.js setting FGLab's charts may carry: what the original's programs wrote
#: (``data``, ``axis``, ``point``, ``zoom``, ``title``...), FGLab's own charts (telemetry,
#: ``fglab.report``, the sweep and compare pages) and plain display settings. No
#: callbacks, formats other than d3 time formats, templates, URLs or CSS classes.
_CHART = _Fields(
    {
        "data": _DATA,
        "axis": _Fields({"rotated": _FLAG, "x": _AXIS_X, "y": _AXIS_Y, "y2": _AXIS_Y}),
        "point": _Fields(
            {
                "show": _FLAG,
                "r": _NUMBER,
                "focus": _Fields({"expand": _Fields({"enabled": _FLAG, "r": _NUMBER})}),
                "select": _Fields({"r": _NUMBER}),
            }
        ),
        "zoom": _Fields({"enabled": _FLAG, "rescale": _FLAG, "type": _choice("scroll", "drag")}),
        "subchart": _Fields({"show": _FLAG, "size": _Fields({"height": _NUMBER})}),
        "title": _Fields(
            {
                "text": _TEXT,
                "position": _choice("top-center", "top-left", "top-right"),
                "padding": _SIDES,
            }
        ),
        "legend": _Fields(
            {
                "show": _FLAG,
                "hide": _NAMES_OR_FLAG,
                "position": _choice("bottom", "right", "inset"),
            }
        ),
        "tooltip": _Fields({"show": _FLAG, "grouped": _FLAG, "horizontal": _FLAG}),
        "size": _Fields({"width": _NUMBER, "height": _NUMBER}),
        "padding": _SIDES,
        "grid": _Fields(
            {
                "x": _Fields({"show": _FLAG, "lines": _GRID_LINES}),
                "y": _Fields({"show": _FLAG, "lines": _GRID_LINES}),
                "focus": _Fields({"show": _FLAG}),
                "lines": _Fields({"front": _FLAG}),
            }
        ),
        "regions": _ListOf(
            _Fields({"axis": _choice("x", "y", "y2"), "start": _POSITION, "end": _POSITION})
        ),
        "color": _Fields({"pattern": _ListOf(_COLOUR)}),
        "line": _Fields(
            {
                "connectNull": _FLAG,
                "step": _Fields({"type": _choice("step", "step-before", "step-after")}),
            }
        ),
        "area": _Fields({"zerobased": _FLAG}),
        "bar": _Fields(
            {
                "width": _Either((_NUMBER, _Fields({"ratio": _NUMBER, "max": _NUMBER}))),
                "zerobased": _FLAG,
                "space": _NUMBER,
            }
        ),
        "spline": _Fields({"interpolation": _Fields({"type": _CURVE})}),
        "transition": _Fields({"duration": _NUMBER}),
        "interaction": _Fields({"enabled": _FLAG}),
    }
)


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
