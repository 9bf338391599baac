from __future__ import annotations

import copy
import math
import re

import pytest

from fglab.charts import ChartError, lttb, prepare_chart, prepare_charts
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
