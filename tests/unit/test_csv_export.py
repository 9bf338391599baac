"""CSV lines of the experiments table: columns, spelling, durations, formula safety."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

from fglab.csv_export import cell, csv_lines, duration, headers

START = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def _read(lines: list[str]) -> list[list[str]]:
    return list(csv.reader(io.StringIO("".join(lines))))


def test_rows_become_lines_of_id_status_options_scores_duration() -> None:
    rows = [
        {
            "_id": "a1",
            "_status": "success",
            "_options": {"lr": 0.1, "model": "cnn, v2", "L2": True},
            "_scores": {"loss": 0.25},
            "_started": START,
            "_finished": START + timedelta(minutes=2, milliseconds=5),
        },
        {"_id": "b2", "_status": "queued", "_options": {"lr": 1}, "_scores": None,
         "_tags": ["baseline", "v2"]},
    ]  # fmt: skip

    lines = list(csv_lines(rows, ["lr", "model", "L2"], ["loss", "acc"]))

    assert all(line.endswith("\r\n") for line in lines)
    assert _read(lines) == [
        ["_id", "status", "lr", "model", "L2", "loss", "acc", "duration", "tags"],
        ["a1", "success", "0.1", "cnn, v2", "true", "0.25", "", "120.005", ""],
        ["b2", "queued", "1", "", "", "", "", "", "baseline,v2"],
    ]


def test_a_score_named_like_an_option_is_told_apart() -> None:
    assert headers(["loss", "lr"], ["loss"]) == [
        "_id",
        "status",
        "loss",
        "lr",
        "_scores.loss",
        "duration",
        "tags",
    ]


def test_text_that_a_spreadsheet_would_run_is_defused() -> None:
    assert cell("=1+1") == "'=1+1"
    assert cell("@SUM(A1)") == "'@SUM(A1)"
    assert cell("-cmd") == "'-cmd"
    assert cell("-1.5") == "-1.5"  # a number stays a number
    assert cell(-2) == "-2"
    assert cell({"a": [1, None]}) == '{"a": [1, null]}'


def test_duration_needs_both_times() -> None:
    assert duration(START, None) == ""
    assert duration(START.replace(tzinfo=None), START + timedelta(seconds=3)) == "3.000"
