"""Writes heard as they happen: files written, moved into place, in folders made later;
an event set wakes a select."""

from __future__ import annotations

import json
import os
import select

from worker.changes import FileChanges, WakingEvent


def heard(changes: FileChanges, *expected) -> set:
    """What `changes` heard, waiting (bounded) until it has heard all of `expected`."""
    got: set = set()
    for _ in range(50):
        got.update(changes.wait(0.1))
        if set(expected) <= got:
            break
    return got


def test_a_file_written_or_moved_into_place_is_heard(tmp_path) -> None:
    with FileChanges.open(tmp_path) as changes:
        assert changes.wait(0.0) == []

        (tmp_path / "scores.json").write_text(json.dumps({"loss": 1}))
        (tmp_path / "progress.tmp").write_text("{}")
        os.replace(tmp_path / "progress.tmp", tmp_path / "progress.json")

        got = heard(changes, tmp_path / "scores.json", tmp_path / "progress.json")
        assert {tmp_path / "scores.json", tmp_path / "progress.json"} <= got
        assert changes.take() == []  # each write heard once


def test_folders_made_while_watching_are_watched_too(tmp_path) -> None:
    (tmp_path / "old").mkdir()
    with FileChanges.open(tmp_path) as changes:
        (tmp_path / "old" / "a.json").write_text("{}")
        (tmp_path / "plots" / "epoch1").mkdir(parents=True)
        got = heard(changes, tmp_path / "old" / "a.json")  # and the new folders: watched
        (tmp_path / "plots" / "epoch1" / "loss.json").write_text("{}")

        got |= heard(changes, tmp_path / "plots" / "epoch1" / "loss.json")
        assert tmp_path / "old" / "a.json" in got
        assert tmp_path / "plots" / "epoch1" / "loss.json" in got


def test_a_waking_event_makes_its_fd_readable_when_set() -> None:
    event = WakingEvent()
    assert select.select([event], [], [], 0)[0] == []

    event.set()

    assert event.is_set()
    assert select.select([event], [], [], 1.0)[0] == [event]
