from __future__ import annotations

import copy
import math
import re

import pytest

from fglab.chart_sanitizer import NAMED_COLOURS, is_colour, sanitize_chart
from fglab.charts import ChartError, lttb, prepare_chart, prepare_charts
from fglab.telemetry import gpu_history_charts, run_charts
from tests.examples import SEED_CHART


def columns_by_name(config: dict) -> dict[str, list]:
    return {column[0]: column[1:] for column in config["data"]["columns"]}


# --- lttb ------------------------------------------------------------------------------


def test_lttb_keeps_endpoints_and_returns_threshold_points() -> None:
    xs = list(range(1000))
    ys = [math.sin(x / 30) for x in xs]
    kept_x, kept_y = lttb(xs, ys, 50)
    assert len(kept_x) == len(kept_y) == 50
    assert (kept_x[0], kept_y[0]) == (0, ys[0])
    assert (kept_x[-1], kept_y[-1]) == (999, ys[999])
    assert kept_x == sorted(set(kept_x))
    assert all(ys[x] == y for x, y in zip(kept_x, kept_y, strict=True))


def test_lttb_picks_the_spike_in_a_flat_series() -> None:
    xs = list(range(10_000))
    ys = [0.0] * 10_000
    ys[4321] = 100.0
    ys[8765] = -50.0
    kept_x, kept_y = lttb(xs, ys, 20)
    assert 4321 in kept_x
    assert 8765 in kept_x
    assert 100.0 in kept_y
    assert -50.0 in kept_y


@pytest.mark.parametrize(("n", "threshold"), [(5, 10), (10, 10), (100, 2), (100, 0), (0, 5)])
def test_lttb_identity_for_short_input_or_small_threshold(n: int, threshold: int) -> None:
    xs = [float(i) for i in range(n)]
    ys = [float(i * i) for i in range(n)]
    kept_x, kept_y = lttb(xs, ys, threshold)
    assert (kept_x, kept_y) == (xs, ys)
    assert kept_x is not xs


def test_lttb_threshold_three() -> None:
    kept_x, kept_y = lttb([0, 1, 2, 3, 4], [0, 0, 9, 0, 0], 3)
    assert (kept_x, kept_y) == ([0, 2, 4], [0, 9, 0])


def test_lttb_accepts_ranges_and_tuples() -> None:
    kept_x, kept_y = lttb(range(100), tuple(float(i % 7) for i in range(100)), 10)
    assert len(kept_x) == 10
    assert isinstance(kept_x, list)
    assert isinstance(kept_y, list)


def test_lttb_rejects_unequal_lengths() -> None:
    with pytest.raises(ValueError, match=re.escape("xs has 3 values but ys has 2")):
        lttb([1, 2, 3], [1, 2], 2)


def test_lttb_downsamples_half_a_million_points() -> None:
    """How fast it does so is bench/bench_charts.py's to measure."""
    n = 500_000
    xs = list(range(n))
    ys = [math.sin(i / 1000) + (i * 7919 % 101) / 100 for i in range(n)]
    kept_x, _ = lttb(xs, ys, 1000)
    assert len(kept_x) == 1000


# --- prepare_chart ---------------------------------------------------------------------


def test_seed_example_becomes_c3_config() -> None:
    original = copy.deepcopy(SEED_CHART)
    config = prepare_chart(SEED_CHART)
    assert config == {
        "data": {
            "xs": {"train": "x1", "val": "x2"},
            "columns": [
                ["train", 1.0, 0.8, 0.6, 0.4, 0.3, 0.2, 0.1, 0.1, 0.1, 0.1, 0.0],
                ["val", 1.0, 0.9, 0.6, 0.4, 0.3],
                ["x1", 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
                ["x2", 2, 6, 8, 9, 11],
            ],
        },
        "axis": {"x": {"label": {"text": "Iterations"}}, "y": {"label": {"text": "Losses"}}},
        "point": {"show": False},
        "zoom": {"enabled": True},
    }
    assert "columnNames" not in config
    assert original == SEED_CHART  # input untouched


def test_seed_example_downsampled_keeps_pairs() -> None:
    config = prepare_chart(SEED_CHART, max_points=4)
    columns = columns_by_name(config)
    assert list(columns) == ["train", "val", "x1", "x2"]
    assert config["data"]["xs"] == {"train": "x1", "val": "x2"}
    assert len(columns["train"]) == len(columns["x1"]) == 4
    assert len(columns["val"]) == len(columns["x2"]) == 4
    assert columns["x1"][0] == 1
    assert columns["x1"][-1] == 11
    x1, train = SEED_CHART["data"]["columns"][2], SEED_CHART["data"]["columns"][0]
    pairs = dict(zip(x1, train, strict=True))
    assert all(pairs[x] == y for x, y in zip(columns["x1"], columns["train"], strict=True))


def test_long_series_without_x_is_downsampled_against_its_index() -> None:
    n = 100_000
    ys = [math.sin(i / 500) for i in range(n)]
    config = prepare_chart({"columnNames": ["loss"], "data": {"columns": [ys]}}, max_points=1000)
    columns = columns_by_name(config)
    assert config["data"]["xs"] == {"loss": "loss__index"}
    assert len(columns["loss"]) == len(columns["loss__index"]) == 1000
    assert columns["loss__index"][0] == 0
    assert columns["loss__index"][-1] == n - 1
    assert all(ys[x] == y for x, y in zip(columns["loss__index"], columns["loss"], strict=True))


def test_long_series_with_x_is_downsampled_jointly() -> None:
    n = 100_000
    xs = [i * 0.5 for i in range(n)]
    ys = [math.cos(i / 300) for i in range(n)]
    chart = {"columnNames": ["y", "x"], "data": {"xs": {"y": "x"}, "columns": [ys, xs]}}
    columns = columns_by_name(prepare_chart(chart, max_points=500))
    assert len(columns["y"]) == len(columns["x"]) == 500
    assert all(ys[int(x * 2)] == y for x, y in zip(columns["x"], columns["y"], strict=True))


def test_shared_x_is_split_when_downsampled() -> None:
    n = 5000
    x = list(range(n))
    a = [math.sin(i / 50) for i in range(n)]
    b = [math.cos(i / 70) for i in range(n)]
    chart = {"columnNames": ["a", "b", "x"], "data": {"x": "x", "columns": [a, b, x]}}
    config = prepare_chart(chart, max_points=100)
    columns = columns_by_name(config)
    assert "x" not in config["data"]
    assert config["data"]["xs"] == {"a": "x__a", "b": "x__b"}
    assert list(columns) == ["a", "b", "x__a", "x__b"]
    assert len(columns["x__a"]) == len(columns["a"]) == 100
    assert all(a[i] == v for i, v in zip(columns["x__a"], columns["a"], strict=True))
    assert all(b[i] == v for i, v in zip(columns["x__b"], columns["b"], strict=True))


def test_shared_x_stays_shared_when_short() -> None:
    chart = {
        "columnNames": ["a", "b", "t"],
        "data": {"xs": {"a": "t", "b": "t"}, "columns": [[1, 2], [3, 4], [0, 10]]},
    }
    config = prepare_chart(chart)
    assert config["data"]["columns"] == [["a", 1, 2], ["b", 3, 4], ["t", 0, 10]]
    assert config["data"]["xs"] == {"a": "t", "b": "t"}


def test_split_names_avoid_existing_columns() -> None:
    chart = {
        "columnNames": ["a", "b", "x", "x__a"],
        "data": {"xs": {"a": "x", "b": "x"}, "columns": [[1] * 10, [2] * 10, list(range(10)), [5]]},
    }
    config = prepare_chart(chart, max_points=5)
    assert config["data"]["xs"] == {"a": "x__a_2", "b": "x__b", "x__a": "x__a__index"}


def test_plain_series_get_index_once_any_series_has_x() -> None:
    chart = {
        "columnNames": ["y", "x", "z"],
        "data": {"xs": {"y": "x"}, "columns": [[1, 2, 3], [10, 20, 30], [7, 8]]},
    }
    config = prepare_chart(chart)
    assert config["data"]["xs"] == {"y": "x", "z": "z__index"}
    assert columns_by_name(config)["z__index"] == [0, 1]


def test_chart_without_x_is_left_alone_when_short() -> None:
    config = prepare_chart({"columnNames": ["a", "b"], "data": {"columns": [[1, 2], [3]]}})
    assert config["data"] == {"columns": [["a", 1, 2], ["b", 3]]}


def test_plain_c3_columns_are_accepted() -> None:
    config = prepare_chart({"data": {"columns": [["a", 1, 2], ["b", 3, 4]], "type": "bar"}})
    assert config["data"] == {"columns": [["a", 1, 2], ["b", 3, 4]], "type": "bar"}


def test_user_point_and_zoom_win() -> None:
    chart = {**SEED_CHART, "point": {"show": True, "r": 4}, "zoom": {"rescale": True}}
    config = prepare_chart(chart)
    assert config["point"] == {"show": True, "r": 4}
    assert config["zoom"] == {"rescale": True, "enabled": True}
    config = prepare_chart({**SEED_CHART, "zoom": {"enabled": False}, "point": {"r": 1}})
    assert config["zoom"] == {"enabled": False}
    assert config["point"] == {"r": 1, "show": False}


def test_defaults_are_not_shared_between_charts() -> None:
    first = prepare_chart(SEED_CHART)
    first["point"]["show"] = True
    assert prepare_chart(SEED_CHART)["point"] == {"show": False}


def test_prepare_charts_accepts_object_or_list() -> None:
    assert prepare_charts(SEED_CHART) == [prepare_chart(SEED_CHART)]
    assert prepare_charts([SEED_CHART, SEED_CHART]) == [prepare_chart(SEED_CHART)] * 2
    assert prepare_charts([]) == []


@pytest.mark.parametrize(
    ("chart", "message"),
    [
        ([1, 2], "a chart must be a JSON object (a C3.js config), got list"),
        ({"columnNames": ["a"]}, "chart 'data' must be an object holding 'columns', got null"),
        ({"columnNames": ["a"], "data": {}}, "chart 'data.columns' must be a list of numeric"),
        (
            {"columnNames": ["a"], "data": {"columns": [1, 2]}},
            "chart 'data.columns' must be a list of numeric lists, got [1, 2]",
        ),
        (
            {"columnNames": ["a", "b"], "data": {"columns": [[1]]}},
            "chart 'columnNames' has 2 names for 1 columns",
        ),
        (
            {"columnNames": "a", "data": {"columns": [[1]]}},
            "chart 'columnNames' must be a list of non-empty strings, got 'a'",
        ),
        (
            {"columnNames": ["a", "a"], "data": {"columns": [[1], [2]]}},
            "chart column name 'a' is used twice",
        ),
        ({"data": {"columns": [[1, 2]]}}, "chart has no 'columnNames'"),
        (
            {"columnNames": ["a"], "data": {"columns": [[1, "2"]]}},
            "chart column 'a' item 1 is '2'; columns hold finite numbers only",
        ),
        (
            {"columnNames": ["a"], "data": {"columns": [[1, None]]}},
            "chart column 'a' item 1 is None",
        ),
        (
            {"columnNames": ["a"], "data": {"columns": [[True]]}},
            "chart column 'a' item 0 is True",
        ),
        (
            {"columnNames": ["a"], "data": {"columns": [[float("nan")]]}},
            "chart column 'a' item 0 is nan",
        ),
        (
            {"columnNames": ["a", "x"], "data": {"xs": {"a": "t"}, "columns": [[1], [1]]}},
            "chart 'data.xs' maps 'a' to 't'; both must be column names",
        ),
        (
            {"columnNames": ["a"], "data": {"xs": ["a"], "columns": [[1]]}},
            "chart 'data.xs' must map series names to x names",
        ),
        (
            {"columnNames": ["a"], "data": {"x": "t", "columns": [[1]]}},
            "chart 'data.x' is 't', which is not a column name",
        ),
        (
            {"columnNames": ["a", "x"], "data": {"xs": {"a": "x"}, "columns": [[1, 2], [1]]}},
            "chart column 'a' has 2 values but its x column 'x' has 1",
        ),
        (
            {
                "columnNames": ["a", "x", "t"],
                "data": {"xs": {"a": "x", "x": "t"}, "columns": [[1], [1], [1]]},
            },
            "chart column 'x' is an x column and also has an x ('t')",
        ),
    ],
)
def test_bad_charts(chart: object, message: str) -> None:
    with pytest.raises(ChartError, match="^" + re.escape(message)):
        prepare_chart(chart)  # type: ignore[arg-type]


def test_max_points_must_allow_endpoints() -> None:
    with pytest.raises(ChartError, match=re.escape("max_points is 2; use at least 3")):
        prepare_chart(SEED_CHART, max_points=2)


def test_prepare_charts_names_the_bad_chart() -> None:
    with pytest.raises(ChartError, match=re.escape("chart 1: chart has no 'columnNames'")):
        prepare_charts([SEED_CHART, {"data": {"columns": [[1]]}}])
    with pytest.raises(ChartError, match=re.escape("got str")):
        prepare_charts("chart")
    with pytest.raises(ChartError, match=re.escape("chart 0: a chart must be a JSON object")):
        prepare_charts([3])


# --- sanitize_chart: only C3 settings FGLab draws reach a browser ------------------------

#: The attack of issue 17: C3's tooltip puts colours into its HTML unescaped.
PAYLOAD_COLOUR = "red'></span><img src=x onerror=alert(1)>"

#: A config with many settings C3 takes and FGLab lets through: comes back unchanged.
RICH_CHART: dict = {
    "data": {
        "columns": [["loss", 1.0, None, 0.5], ["acc", 0.1, 0.2, 0.3], ["t", 1, 2, 3]],
        "xs": {"loss": "t", "acc": "t"},
        "names": {"loss": "Loss <train>"},
        "types": {"loss": "spline", "acc": "bar"},
        "colors": {"loss": "#1f77b4", "acc": "RebeccaPurple"},
        "axes": {"acc": "y2"},
        "groups": [["loss", "acc"]],
        "order": "asc",
        "hide": ["acc"],
        "labels": True,
        "empty": {"label": {"text": "No data"}},
    },
    "axis": {
        "rotated": False,
        "x": {
            "type": "timeseries",
            "label": {"text": "time", "position": "outer-center"},
            "tick": {"format": "%H:%M", "count": 6, "culling": {"max": 4}, "rotate": 45},
            "min": "2024-01-01",
            "padding": {"left": 0, "right": 0},
        },
        "y": {"label": "loss", "min": 0, "max": 1.5, "padding": {"bottom": 0}, "inverted": False},
        "y2": {"show": True, "label": "accuracy", "tick": {"values": [0, 0.5, 1]}},
    },
    "point": {"show": True, "r": 2, "focus": {"expand": {"enabled": False}}},
    "zoom": {"enabled": True, "rescale": True, "type": "drag"},
    "subchart": {"show": True, "size": {"height": 40}},
    "title": {"text": "Loss & accuracy", "position": "top-left", "padding": {"top": 4}},
    "legend": {"show": True, "position": "right", "hide": False},
    "tooltip": {"show": True, "grouped": False},
    "size": {"width": 640, "height": 240},
    "padding": {"top": 10, "right": 20, "bottom": 10, "left": 40},
    "grid": {
        "x": {"show": True, "lines": [{"value": 2, "text": "best", "position": "middle"}]},
        "y": {"lines": [{"value": 0.5}]},
    },
    "regions": [{"axis": "x", "start": 1, "end": 2}],
    "color": {"pattern": ["#000", "#ffffff80", "teal"]},
    "line": {"connectNull": True, "step": {"type": "step-after"}},
    "bar": {"width": {"ratio": 0.5}, "zerobased": True},
    "spline": {"interpolation": {"type": "monotone"}},
    "transition": {"duration": 0},
    "interaction": {"enabled": True},
}


def test_sanitize_keeps_a_good_config_unchanged() -> None:
    original = copy.deepcopy(RICH_CHART)
    clean, dropped = sanitize_chart(RICH_CHART)
    assert clean == RICH_CHART
    assert dropped == []
    assert original == RICH_CHART  # input untouched
    assert clean["data"] is not RICH_CHART["data"]


def test_fglab_own_charts_pass_unchanged() -> None:
    """The server's telemetry charts, fglab.report's shape and the seed example."""
    samples: list[list[float | None]] = [
        [1.0, 50.0, 2**20, 2**21, 30],
        [2.0, 75.0, None, None, None],
    ]
    gpus = [{"t": 1.0, "gpus": [{"index": 0, "memory_used": 2**22, "utilization": 9}]}]
    reported = {
        "title": {"text": "loss"},
        "columnNames": ["train", "epoch"],
        "data": {"xs": {"train": "epoch"}, "columns": [[0.9, 0.5], [1, 2]]},
        "axis": {"x": {"label": "epoch"}, "y": {"label": "loss"}},
    }
    for config in [*run_charts(samples), *gpu_history_charts(gpus)]:
        assert sanitize_chart(config) == (config, [])
    for chart in (SEED_CHART, reported):
        dropped: list[str] = []
        prepare_chart(chart, dropped=dropped)
        assert dropped == []


def test_a_colour_that_is_html_is_dropped_with_the_reason() -> None:
    chart = {
        "data": {
            "columns": [["l", 1, 2], ["m", 3, 4]],
            "colors": {"l": PAYLOAD_COLOUR, "m": "red"},
        },
        "color": {"pattern": ["#abc", "javascript:alert(1)"]},
    }
    clean, dropped = sanitize_chart(chart)
    assert clean["data"]["colors"] == {"m": "red"}
    assert clean["color"] == {"pattern": ["#abc"]}
    assert dropped == [
        f"data.colors.l: {PAYLOAD_COLOUR!r} is not a colour "
        "(#rgb, #rrggbb, #rrggbbaa or a CSS colour name)",
        "color.pattern[1]: 'javascript:alert(1)' is not a colour "
        "(#rgb, #rrggbb, #rrggbbaa or a CSS colour name)",
    ]


@pytest.mark.parametrize(
    "colour", ["#fff", "#FFF", "#a0B1c2", "#11223344", "#1234", "red", "Red", "rebeccapurple"]
)
def test_good_colours(colour: str) -> None:
    assert is_colour(colour)


@pytest.mark.parametrize(
    "colour",
    [
        "#ff",
        "#123456789",
        "#fff\n",
        " red",
        "red;",
        "#ggg",
        "rgb(1, 2, 3)",
        "url(x)",
        "expression(alert(1))",
        "transparent",
        "",
        1,
        None,
        ["red"],
    ],
)
def test_bad_colours(colour: object) -> None:
    assert not is_colour(colour)
    chart = {"data": {"columns": [["l", 1]], "colors": {"l": colour}}}
    assert sanitize_chart(chart)[0]["data"]["colors"] == {}


def test_named_colours_are_the_css_level_4_list() -> None:
    assert len(NAMED_COLOURS) == 148
    assert {"aliceblue", "rebeccapurple", "grey", "gray", "yellowgreen"} <= NAMED_COLOURS


def test_unknown_keys_are_dropped_at_every_level() -> None:
    chart = {
        "data": {
            "columns": [["l", 1, 2]],
            "url": "/api/v1/tokens",
            "color": "function(c) { return c }",
            "labels": {"format": "alert(1)"},
            "onclick": "alert(1)",
        },
        "tooltip": {
            "show": True,
            "init": {"show": True},
            "contents": "<img src=x onerror=alert(1)>",
            "format": {"title": "alert(1)"},
            "position": "alert(1)",
        },
        "axis": {"y": {"tick": {"format": "alert(1)", "count": 3}}, "z": {"show": True}},
        "legend": {"item": {"onclick": "alert(1)"}},
        "bindto": "body",
        "onrendered": "alert(1)",
        "__proto__": {"polluted": True},
    }
    clean, dropped = sanitize_chart(chart)
    assert clean == {
        "data": {"columns": [["l", 1, 2]]},
        "tooltip": {"show": True},
        "axis": {"y": {"tick": {"count": 3}}},
        "legend": {},
    }
    assert [line.split(":")[0] for line in dropped] == [
        "data.url",
        "data.color",
        "data.labels",
        "data.onclick",
        "tooltip.init",
        "tooltip.contents",
        "tooltip.format",
        "tooltip.position",
        "axis.y.tick.format",
        "axis.z",
        "legend.item",
        "bindto",
        "onrendered",
        "__proto__",
    ]
    assert "tooltip.init: not a chart setting FGLab passes to C3.js" in dropped
    assert "data.labels: {'format': 'alert(1)'} is not true or false" in dropped


@pytest.mark.parametrize(
    ("chart", "kept", "left_out"),
    [
        ({"size": {"height": True}}, {"size": {}}, "size.height: True is not a finite number"),
        ({"size": {"height": "9px"}}, {"size": {}}, "size.height: '9px' is not a finite number"),
        ({"size": {"width": float("inf")}}, {"size": {}}, "size.width: inf is not a finite"),
        ({"point": {"show": "false"}}, {"point": {}}, "point.show: 'false' is not true or false"),
        ({"title": {"text": ["a"]}}, {"title": {}}, "title.text: ['a'] is not a string"),
        ({"title": "loss"}, {}, "title: 'loss' is not an object"),
        ({"data": {"type": "html"}}, {"data": {}}, "data.type: 'html' is not one of 'line', "),
        (
            {"data": {"columns": [["a", 1, "<b>"], ["b", 2]]}},
            {"data": {"columns": [["b", 2]]}},
            "data.columns[0]: ['a', 1, '<b>'] is not a column (its name, then numbers)",
        ),
        ({"data": {"xs": ["a"]}}, {"data": {}}, "data.xs: ['a'] is not an object keyed by"),
        ({"axis": {"x": {"label": 3}}}, {"axis": {"x": {}}}, "axis.x.label: 3 is not a string or"),
        (
            {"axis": {"x": {"tick": {"format": "%H<b>", "count": 2}}}},
            {"axis": {"x": {"tick": {"count": 2}}}},
            "axis.x.tick.format: '%H<b>' is not a d3 time format such as '%H:%M'",
        ),
        ({"data": {"hide": "all"}}, {"data": {}}, "data.hide: 'all' is not true or false or a"),
    ],
)
def test_values_of_the_wrong_type_are_dropped(chart: dict, kept: dict, left_out: str) -> None:
    clean, dropped = sanitize_chart(chart)
    assert clean == kept
    assert len(dropped) == 1
    assert dropped[0].startswith(left_out)


def test_an_axis_label_object_keeps_its_good_parts() -> None:
    clean, dropped = sanitize_chart({"axis": {"y": {"label": {"text": "loss", "position": 5}}}})
    assert clean == {"axis": {"y": {"label": {"text": "loss"}}}}
    assert dropped == ["axis.y.label.position: 5 is not one of 'inner-right', " + _POSITIONS]


_POSITIONS = (
    "'inner-center', 'inner-left', 'outer-right', 'outer-center', 'outer-left', "
    "'inner-top', 'inner-middle', 'inner-bottom', 'outer-top', 'outer-middle', 'outer-bottom'"
)


def test_a_chart_that_is_not_an_object_is_empty() -> None:
    assert sanitize_chart([1, 2]) == ({}, ["the chart is [1, 2], not an object (a C3.js config)"])  # type: ignore[arg-type]


def test_prepare_charts_reports_what_it_left_out_per_chart() -> None:
    bad = {**SEED_CHART, "data": {**SEED_CHART["data"], "colors": {"train": PAYLOAD_COLOUR}}}
    bad["tooltip"] = {"init": {"show": True}}
    dropped: list[str] = []
    good, cleaned = prepare_charts([SEED_CHART, bad], dropped=dropped)
    assert cleaned == {**good, "data": {**good["data"], "colors": {}}, "tooltip": {}}
    assert sorted(line.split(": ")[0:2] for line in dropped) == [
        ["chart 1", "data.colors.train"],
        ["chart 1", "tooltip.init"],
    ]
    single: list[str] = []
    prepare_charts(bad, dropped=single)
    assert single == [line.replace("chart 1", "chart 0") for line in dropped]
