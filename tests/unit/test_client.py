"""The client's pure parts: SSE parsing, flat records, objectives, ``-o`` options, tables."""

from __future__ import annotations

import pytest

from fglab.client.cli import UsageError, split_options, table, typed_options
from fglab.client.objects import ENDED, SWEEP_ENDED
from fglab.client.records import parse_objective, to_record
from fglab.client.transport import Event, sse_events
from fglab.sweeps.record import CANCELLED, FINISHED


def test_sse_events_read_data_ids_and_named_events_and_skip_comments() -> None:
    stream = [
        b'id: 1-0\n', b'data: {"s": "out", "t": "a\\n"}\n', b"\n",
        b": keepalive\n", b"\n",
        b"id: 2-0\n", b"event: end\n", b"data: {}\n", b"\n",
    ]  # fmt: skip
    assert list(sse_events(stream)) == [
        Event("message", '{"s": "out", "t": "a\\n"}', "1-0"),
        Event("end", "{}", "2-0"),
    ]


def test_a_row_becomes_a_flat_record() -> None:
    row = {
        "_id": "x", "_status": "success", "_options": {"lr": 0.1},
        "_scores": {"loss": 0.5, "val": {"acc": 0.9}}, "_created": "2026-01-01T00:00:00Z",
    }  # fmt: skip
    assert to_record(row) == {
        "_id": "x", "status": "success", "options.lr": 0.1, "scores.loss": 0.5,
        "scores.val.acc": 0.9, "created": "2026-01-01T00:00:00Z", "started": None,
        "finished": None, "machine": None, "notes": None, "tags": None,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("text", "objective"),
    [
        ("loss:min", {"score": "loss", "goal": "minimize"}),
        ("acc:max", {"score": "acc", "goal": "maximize"}),
        ("loss", {"score": "loss", "goal": "minimize"}),
        ("acc:Maximize", {"score": "acc", "goal": "maximize"}),
    ],
)
def test_objectives_read_from_text(text: str, objective: dict) -> None:
    assert parse_objective(text) == objective


@pytest.mark.parametrize("text", [":min", "loss:up", ""])
def test_an_unusable_objective_names_itself(text: str) -> None:
    with pytest.raises(ValueError, match=f"objective {text!r} is not usable"):
        parse_objective(text)


def test_options_are_json_when_they_parse_and_text_for_string_fields() -> None:
    schema = {"run": {"type": "string"}, "opt": {"type": "enum", "values": ["1e-3", "adam"]}}
    pairs = split_options(["lr=0.1", "L2=true", "name=cnn", "run=007", "opt=1e-3", "s=a=b"])
    assert typed_options(pairs, schema) == {
        "lr": 0.1, "L2": True, "name": "cnn", "run": "007", "opt": "1e-3", "s": "a=b",
    }  # fmt: skip


@pytest.mark.parametrize("text", ["lr", "=1", " =1"])
def test_an_option_without_a_name_or_equals_is_refused(text: str) -> None:
    with pytest.raises(UsageError, match="is not NAME=VALUE"):
        split_options([text])


def test_a_table_pads_its_columns() -> None:
    assert table(["A", "BB"], [["x", 1.5], ["long", None]]) == "A     BB\nx     1.5\nlong"
    assert table(["A"], []) == "(none)"


def test_the_ended_states_are_the_servers() -> None:
    assert {FINISHED, CANCELLED} == SWEEP_ENDED
    assert {"success", "fail", "killed", "timeout", "cancelled", "lost", "pruned"} == ENDED
