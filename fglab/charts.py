"""Experiment charts: FGLab's ``_charts`` turned into C3.js configs, with long series thinned.

A program writes ``_charts`` as a C3.js chart config (or a list of them) whose
``data.columns`` hold bare numeric arrays and whose ``columnNames`` name them in order.
:func:`prepare_chart` produces what ``c3.generate`` takes: each column led by its name,
series longer than ``max_points`` downsampled with Largest-Triangle-Three-Buckets (LTTB,
Steinarsson 2013) so a browser is never sent half a million points, and FGLab's defaults
(no points, zoom on) filled in where the chart does not set them. What comes out holds
only the settings :mod:`fglab.chart_sanitizer` lets through to a browser.

Pure functions, no I/O; the experiment page and API call them on stored documents.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence

from fglab.chart_sanitizer import sanitize_chart

__all__ = ["DEFAULTS", "ChartError", "lttb", "prepare_chart", "prepare_charts"]

DEFAULTS: dict = {"point": {"show": False}, "zoom": {"enabled": True}}


class ChartError(ValueError):
    """A ``_charts`` value cannot be drawn; the message names the chart part and value."""


def lttb(
    xs: Sequence[float], ys: Sequence[float], threshold: int
) -> tuple[list[float], list[float]]:
    """Downsample the series ``(xs, ys)`` to ``threshold`` points with LTTB.

    The first and last points are always kept; the points kept are the input's own values
    (nothing is interpolated). Input of at most ``threshold`` points, or a ``threshold``
    below 3, comes back unchanged (as new lists). ``xs`` should be sorted ascending.

    Raises ValueError when ``xs`` and ``ys`` differ in length.
    """
    n = len(xs)
    if len(ys) != n:
        raise ValueError(f"lttb: xs has {n} values but ys has {len(ys)}; give equal lengths")
    if threshold < 3 or n <= threshold:
        return list(xs), list(ys)

    xs = xs if isinstance(xs, list) else list(xs)
    ys = ys if isinstance(ys, list) else list(ys)
    every = (n - 2) / (threshold - 2)
    kept = [0]
    a = 0
    for i in range(threshold - 2):
        # The candidate bucket [lo, hi) and the next bucket [hi, nxt), whose mean is the
        # third corner of the triangle.
        lo = int(i * every) + 1
        hi = int((i + 1) * every) + 1
        nxt = min(int((i + 2) * every) + 1, n)  # the last "next bucket" is the final point
        count = nxt - hi
        avg_x = sum(xs[hi:nxt]) / count
        avg_y = sum(ys[hi:nxt]) / count
        ax = xs[a]
        ay = ys[a]
        # Twice the triangle's area is |c_y*y + c_x*x + c_0|; hoisting the constants keeps
        # the inner loop one list comprehension (500k points take about 0.05 s).
        c_y = ax - avg_x
        c_x = avg_y - ay
        c_0 = -c_y * ay - c_x * ax
        areas = [abs(c_y * y + c_x * x + c_0) for x, y in zip(xs[lo:hi], ys[lo:hi], strict=True)]
        a = lo + areas.index(max(areas))
        kept.append(a)
    kept.append(n - 1)
    return [xs[k] for k in kept], [ys[k] for k in kept]


def prepare_chart(chart: Mapping, max_points: int = 1000, dropped: list[str] | None = None) -> dict:
    """Turn one FGLab chart into a C3.js config that is safe to hand to ``c3.generate``.

    - ``data.columns[i]`` becomes ``[columnNames[i], *values]``; ``columnNames`` is dropped.
      A chart without ``columnNames`` whose columns already start with their name (plain
      C3) is accepted as is.
    - ``data.x`` (one x column for all series) is rewritten as ``data.xs``.
    - A series longer than ``max_points`` is downsampled together with its x column; a
      series without one uses its 0-based index as x. An x column shared by several
      series, one of which is downsampled, is split into one per series, ``<x>__<series>``.
    - Once any series has an x column, each series without one gets its index as an x
      column ``<series>__index``, since C3 would otherwise borrow another series' x.
    - ``point.show = false`` and ``zoom.enabled = true`` are added unless the chart sets
      them (a deep merge: the chart's own settings win).
    - Only the settings of :func:`fglab.chart_sanitizer.sanitize_chart`'s allow-list are
      kept (no callbacks, templates, unknown keys or colours that are not colours); a
      line per part left out is appended to `dropped` when given.

    The input is not modified. Raises :class:`ChartError` for anything C3 could not draw.
    """
    if max_points < 3:
        raise ChartError(f"max_points is {max_points!r}; use at least 3")
    if not isinstance(chart, Mapping):
        raise ChartError(f"a chart must be a JSON object (a C3.js config), got {_kind(chart)}")
    data = chart.get("data")
    if not isinstance(data, Mapping):
        raise ChartError(f"chart 'data' must be an object holding 'columns', got {_kind(data)}")
    names, columns = _named_columns(chart, data)
    x_of = _x_of(data, names)
    out_columns = _downsample(names, columns, x_of, max_points)

    out = {
        key: copy.deepcopy(value)
        for key, value in chart.items()
        if key not in ("columnNames", "data")
    }
    out_data = {
        key: copy.deepcopy(value)
        for key, value in data.items()
        if key not in ("columns", "x", "xs")
    }
    out_data["columns"] = [[name, *values] for name, values in out_columns.items()]
    xs = {y: x for y, x in x_of.items() if x in out_columns}
    if xs:
        out_data["xs"] = xs
    out["data"] = out_data
    safe, left_out = sanitize_chart(_merge(DEFAULTS, out))
    if dropped is not None:
        dropped.extend(left_out)
    return safe


def prepare_charts(
    charts: object, max_points: int = 1000, dropped: list[str] | None = None
) -> list[dict]:
    """Prepare ``_charts``, which may be one chart object or a list of them.

    Each setting left out is appended to `dropped` (when given) as
    ``"chart <index>: <path>: <why>"``. Raises :class:`ChartError` naming the chart
    (0-based) that is bad.
    """
    if isinstance(charts, Mapping):
        left_out: list[str] = []
        prepared = [prepare_chart(charts, max_points, left_out)]
        _note(dropped, 0, left_out)
        return prepared
    if not isinstance(charts, list):
        raise ChartError(f"_charts must be a chart object or a list of them, got {_kind(charts)}")
    prepared = []
    for index, chart in enumerate(charts):
        left_out = []
        try:
            prepared.append(prepare_chart(chart, max_points, left_out))
        except ChartError as e:
            raise ChartError(f"chart {index}: {e}") from e
        _note(dropped, index, left_out)
    return prepared


def _note(dropped: list[str] | None, index: int, left_out: list[str]) -> None:
    if dropped is not None:
        dropped.extend(f"chart {index}: {line}" for line in left_out)


def _named_columns(chart: Mapping, data: Mapping) -> tuple[list[str], list[list]]:
    columns = data.get("columns")
    if not isinstance(columns, list) or not all(isinstance(c, list) for c in columns):
        raise ChartError(
            f"chart 'data.columns' must be a list of numeric lists, got {_short(columns)}"
        )
    if "columnNames" in chart:
        names = chart["columnNames"]
        if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
            raise ChartError(
                f"chart 'columnNames' must be a list of non-empty strings, got {_short(names)}"
            )
        if len(names) != len(columns):
            raise ChartError(
                f"chart 'columnNames' has {len(names)} names for {len(columns)} columns; "
                f"give one name per column"
            )
        values = columns
    elif all(c and isinstance(c[0], str) and c[0] for c in columns):
        names = [c[0] for c in columns]
        values = [c[1:] for c in columns]
    else:
        raise ChartError("chart has no 'columnNames'; name each column of 'data.columns' in order")
    seen: set[str] = set()
    for name, column in zip(names, values, strict=True):
        if name in seen:
            raise ChartError(f"chart column name {name!r} is used twice; names must be distinct")
        seen.add(name)
        for i, v in enumerate(column):
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                raise ChartError(
                    f"chart column {name!r} item {i} is {v!r}; columns hold finite numbers only"
                )
    return names, values


def _x_of(data: Mapping, names: list[str]) -> dict[str, str]:
    """Map each series that has an x column to that column's name."""
    xs = data.get("xs", {})
    if not isinstance(xs, Mapping):
        raise ChartError(f"chart 'data.xs' must map series names to x names, got {_short(xs)}")
    single = data.get("x")
    if single is not None and single not in names:
        raise ChartError(f"chart 'data.x' is {single!r}, which is not a column name")
    for y, x in xs.items():
        if y not in names or x not in names:
            raise ChartError(f"chart 'data.xs' maps {y!r} to {x!r}; both must be column names")
    x_names = set(xs.values()) | ({single} if single is not None else set())
    x_of: dict[str, str] = {}
    for name in names:
        if name in x_names:
            if name in xs:
                raise ChartError(
                    f"chart column {name!r} is an x column and also has an x ({xs[name]!r})"
                )
            continue
        x = xs.get(name, single)
        if x is not None:
            x_of[name] = x
    return x_of


def _downsample(
    names: list[str], columns: list[list], x_of: dict[str, str], max_points: int
) -> dict[str, list]:
    """Return the output columns by name, in input order, and point ``x_of`` at new x names.

    Index columns made for series without an x come last, in series order.
    """
    by_name = dict(zip(names, columns, strict=True))
    users: dict[str, list[str]] = {}
    x: str | None
    for y, x in x_of.items():
        if len(by_name[y]) != len(by_name[x]):
            raise ChartError(
                f"chart column {y!r} has {len(by_name[y])} values but its x column {x!r} "
                f"has {len(by_name[x])}; give them equal lengths"
            )
        users.setdefault(x, []).append(y)
    split = {x for x, ys in users.items() if _split(ys, by_name, max_points)}
    taken = set(names)
    series: dict[str, list] = {}
    new_xs: dict[str, dict[str, list]] = {}  # original x name -> {output name: values}
    index_columns: dict[str, list] = {}
    plain: list[str] = []  # series drawn against their index, not downsampled
    for name in names:
        if name in users:
            continue
        values = by_name[name]
        x = x_of.get(name)
        if x is None:
            if len(values) <= max_points:
                series[name] = list(values)
                plain.append(name)
                continue
            kept_x, series[name] = lttb(range(len(values)), values, max_points)
            x_of[name] = _fresh(f"{name}__index", taken)
            index_columns[x_of[name]] = kept_x
            continue
        kept_x, series[name] = lttb(by_name[x], values, max_points)
        if x in split:
            x_of[name] = _fresh(f"{x}__{name}", taken)
        # An unsplit shared x is never downsampled, so every user yields the same column.
        new_xs.setdefault(x, {}).setdefault(x_of[name], kept_x)
    if x_of:
        # With data.xs set, C3 draws a series missing from it against another series'
        # x values (getOtherTargetXs), so each plain series gets its index spelled out.
        for name in plain:
            x_of[name] = _fresh(f"{name}__index", taken)
            index_columns[x_of[name]] = list(range(len(series[name])))
    out: dict[str, list] = {}
    for name in names:
        if name in users:
            out.update(new_xs[name])
        else:
            out[name] = series[name]
    out.update(index_columns)
    return out


def _split(ys: list[str], by_name: Mapping[str, list], max_points: int) -> bool:
    """Whether a shared x column must be split: one of its series gets downsampled."""
    return len(ys) > 1 and any(len(by_name[y]) > max_points for y in ys)


def _fresh(name: str, taken: set[str]) -> str:
    candidate, n = name, 2
    while candidate in taken:
        candidate, n = f"{name}_{n}", n + 1
    taken.add(candidate)
    return candidate


def _merge(defaults: Mapping, chart: Mapping) -> dict:
    """Deep-merge ``defaults`` under ``chart``: the chart's own settings win at every level."""
    merged = dict(chart)
    for key, default in defaults.items():
        if key not in merged:
            merged[key] = copy.deepcopy(default)
        elif isinstance(merged[key], Mapping) and isinstance(default, Mapping):
            merged[key] = _merge(default, merged[key])
    return merged


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
