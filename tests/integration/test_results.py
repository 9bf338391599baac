"""The results folder watcher, against a real MongoDB wire server and real files."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import bson
import pytest
from bson import ObjectId
from gridfs import GridFSBucket
from pymongo.errors import AutoReconnect, ServerSelectionTimeoutError

import tasks.fields
import worker.results
from tasks.fields import is_large_ref, resolve_large_fields
from worker.results import ResultsSync, SyncReport

PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00"
    b"\x00\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\xff\xff?\x00\x05\xfe\x02\xfe\xa7"
    b"5\x81\x84\x00\x00\x00\x00IEND\xaeB`\x82"
)


@pytest.fixture
def project_id() -> ObjectId:
    return ObjectId()


@pytest.fixture
def experiment_id(db, project_id: ObjectId) -> ObjectId:
    return (
        db["experiments"].insert_one({"_project_id": project_id, "_status": "running"}).inserted_id
    )


@pytest.fixture
def folder(tmp_path: Path, experiment_id: ObjectId) -> Path:
    path = tmp_path / "results" / str(experiment_id)
    path.mkdir(parents=True)
    return path


@pytest.fixture
def results(db, folder: Path, experiment_id: ObjectId, project_id: ObjectId) -> ResultsSync:
    return ResultsSync(db, folder, experiment_id, project_id, max_file_bytes=100_000)


def _write(path: Path, content: bytes | str | object) -> Path:
    """Write a file and give it an mtime later than any it had, so a change always shows."""
    path.parent.mkdir(parents=True, exist_ok=True)
    before = path.stat().st_mtime_ns if path.exists() else 0
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, str):
        path.write_text(content)
    else:
        path.write_text(json.dumps(content))
    later = max(path.stat().st_mtime_ns, before + 1_000_000_000)
    os.utime(path, ns=(later, later))
    return path


def _experiment(db, experiment_id: ObjectId) -> dict:
    return db["experiments"].find_one({"_id": experiment_id})


def _stored(db, experiment_id: ObjectId, name: str) -> list[bytes]:
    bucket = GridFSBucket(db)
    return [
        bucket.open_download_stream(f["_id"]).read()
        for f in db["fs.files"].find({"metadata.experiment": experiment_id, "filename": name})
    ]


def test_a_program_run_lands_fields_and_files(db, results, folder, experiment_id) -> None:
    _write(folder / "scores.json", {"_scores": {"F1": 0.5, "BLEU": 12.5}})
    _write(folder / "chart.json", {"_charts": {"columnNames": ["train"], "columns": [[1, 2]]}})
    _write(folder / "notes.json", {"_notes": "first", "Framework": {"Name": "Theano"}})
    _write(folder / "plot.png", PNG)
    _write(folder / "log.txt", "epoch 1\n")

    report = results.sync()

    assert report == SyncReport(
        uploaded=("chart.json", "log.txt", "notes.json", "plot.png", "scores.json")
    )
    assert report.all_landed
    doc = _experiment(db, experiment_id)
    assert doc["_scores"] == {"F1": 0.5, "BLEU": 12.5}
    assert doc["_charts"] == {"columnNames": ["train"], "columns": [[1, 2]]}
    assert doc["_notes"] == "first"
    assert doc["Framework"] == {"Name": "Theano"}
    assert sorted((f["filename"], f["mimetype"]) for f in doc["_files"]) == [
        ("log.txt", "text/plain"),
        ("plot.png", "image/png"),
    ]
    assert _stored(db, experiment_id, "plot.png") == [PNG]
    assert db["fs.files"].count_documents({"filename": {"$regex": r"\.json$"}}) == 0

    _write(folder / "notes.json", {"_notes": "second"})
    _write(folder / "log.txt", "epoch 1\nepoch 2\n")

    assert results.sync().uploaded == ("log.txt", "notes.json")
    doc = _experiment(db, experiment_id)
    assert doc["_notes"] == "second"
    assert doc["Framework"] == {"Name": "Theano"}
    assert [f["filename"] for f in doc["_files"]].count("log.txt") == 1
    assert _stored(db, experiment_id, "log.txt") == [b"epoch 1\nepoch 2\n"]
    assert db["fs.files"].count_documents({}) == 2
    file_ids = {f["_id"] for f in db["fs.files"].find()}
    assert set(db["fs.chunks"].distinct("files_id")) == file_ids

    assert results.sync() == SyncReport()
    assert results.sync(final=True) == SyncReport()
    assert results.sync(final=True) == SyncReport()
    assert "_result_notes" not in _experiment(db, experiment_id)


def test_reserved_and_invalid_field_names_are_refused(db, results, folder, experiment_id) -> None:
    _write(
        folder / "notes.json",
        {"_status": "success", "a.b": 1, "$where": 2, "Notes": "kept", "_notes": "kept too"},
    )

    report = results.sync()

    doc = _experiment(db, experiment_id)
    assert doc["_status"] == "running"
    assert doc["Notes"] == "kept"
    assert doc["_notes"] == "kept too"
    assert "a.b" not in doc
    assert "$where" not in doc
    assert "notes.json: field '_status' is reserved for FGLab; ignored" in report.notes
    assert len(report.notes) == 3
    assert sorted(doc["_result_notes"]) == sorted(report.notes)
    assert report.uploaded == ("notes.json",)


def test_half_written_json_waits_until_the_final_pass(db, results, folder, experiment_id) -> None:
    _write(folder / "scores.json", '{"_scores": {"F1": 0.')

    report = results.sync()
    assert report.uploaded == ()
    assert report.pending == ("scores.json",)
    assert report.notes == ()
    assert "_result_notes" not in _experiment(db, experiment_id)

    report = results.sync(final=True)

    assert report.uploaded == ("scores.json",)
    assert report.all_landed
    (note,) = report.notes
    assert note.startswith("scores.json: not a JSON object (")
    assert note.endswith("); kept as a file")
    doc = _experiment(db, experiment_id)
    assert doc["_result_notes"] == [note]
    assert [(f["filename"], f["mimetype"]) for f in doc["_files"]] == [
        ("scores.json", "application/json")
    ]
    assert _stored(db, experiment_id, "scores.json") == [b'{"_scores": {"F1": 0.']
    assert results.sync(final=True) == SyncReport()


def test_json_that_is_not_an_object_is_kept_as_a_file(db, results, folder, experiment_id) -> None:
    _write(folder / "list.json", [1, 2, 3])

    assert results.sync().pending == ("list.json",)
    report = results.sync(final=True)

    assert report.notes == ("list.json: not a JSON object (top level is an array); kept as a file",)
    assert _stored(db, experiment_id, "list.json") == [b"[1, 2, 3]"]


def test_a_json_file_that_completes_applies_on_a_later_pass(db, results, folder, experiment_id):
    _write(folder / "scores.json", '{"_scores": {"F1": 0.')
    assert results.sync().pending == ("scores.json",)

    _write(folder / "scores.json", '{"_scores": {"F1": 0.75}}')

    assert results.sync().uploaded == ("scores.json",)
    assert _experiment(db, experiment_id)["_scores"] == {"F1": 0.75}


def test_links_are_not_followed(db, results, folder, tmp_path, experiment_id) -> None:
    secret = _write(tmp_path / "outside" / "secret.txt", "do not upload")
    _write(tmp_path / "outside" / "inner.txt", "nor this")
    (folder / "secret.txt").symlink_to(secret)
    (folder / "outside").symlink_to(tmp_path / "outside", target_is_directory=True)
    _write(folder / "real.txt", "fine")
    (folder / "inside.txt").symlink_to(folder / "real.txt")

    report = results.sync()

    assert report.uploaded == ("real.txt",)
    assert set(report.notes) == {
        "inside.txt: symbolic link not followed",
        "outside: symbolic link not followed",
        "secret.txt: symbolic link not followed",
    }
    doc = _experiment(db, experiment_id)
    assert [f["filename"] for f in doc["_files"]] == ["real.txt"]
    assert sorted(doc["_result_notes"]) == sorted(report.notes)
    assert db["fs.files"].count_documents({}) == 1
    assert results.sync(final=True) == SyncReport()


def test_oversized_files_are_noted_once(db, folder, experiment_id, project_id) -> None:
    results = ResultsSync(db, folder, experiment_id, project_id, max_file_bytes=10)
    _write(folder / "big.bin", b"x" * 11)
    _write(folder / "small.bin", b"x" * 10)

    report = results.sync()

    assert report.uploaded == ("small.bin",)
    assert report.notes == ("big.bin: 11 bytes is over the upload limit of 10 bytes; not uploaded",)
    assert report.all_landed
    _write(folder / "big.bin", b"x" * 20)
    assert results.sync() == SyncReport()
    assert results.sync(final=True) == SyncReport()
    doc = _experiment(db, experiment_id)
    assert doc["_result_notes"] == list(report.notes)
    assert [f["filename"] for f in doc["_files"]] == ["small.bin"]


def test_nested_files_are_named_by_relative_path(db, results, folder, experiment_id) -> None:
    _write(folder / "plots" / "epoch1" / "loss.png", PNG)
    _write(folder / "plots" / "summary.csv", "a,b\n1,2\n")
    _write(folder / "top.txt", "top")
    _write(folder / "sub" / "fields.json", {"Depth": 2})

    report = results.sync()

    assert report.uploaded == (
        "plots/epoch1/loss.png",
        "plots/summary.csv",
        "sub/fields.json",
        "top.txt",
    )
    doc = _experiment(db, experiment_id)
    assert doc["Depth"] == 2
    assert sorted((f["filename"], f["mimetype"]) for f in doc["_files"]) == [
        ("plots/epoch1/loss.png", "image/png"),
        ("plots/summary.csv", "text/csv"),
        ("top.txt", "text/plain"),
    ]
    assert _stored(db, experiment_id, "plots/epoch1/loss.png") == [PNG]


def test_a_mongodb_failure_leaves_the_file_pending(
    db, results, folder, experiment_id, monkeypatch, caplog
) -> None:
    real_put = worker.results.put_experiment_file
    calls = {"n": 0}

    def flaky_put(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise AutoReconnect("connection reset by test")
        return real_put(*args, **kwargs)

    monkeypatch.setattr(worker.results, "put_experiment_file", flaky_put)
    _write(folder / "a.txt", "a")
    _write(folder / "b.txt", "b")

    with caplog.at_level(logging.WARNING, logger="worker.results"):
        report = results.sync(final=True)

    assert report.pending == ("a.txt",)
    assert report.uploaded == ("b.txt",)
    assert not report.all_landed
    assert len([r for r in caplog.records if "connection reset by test" in r.getMessage()]) == 1

    report = results.sync(final=True)

    assert report == SyncReport(uploaded=("a.txt",))
    assert _stored(db, experiment_id, "a.txt") == [b"a"]
    assert results.sync(final=True) == SyncReport()


def test_an_unreachable_mongodb_ends_the_pass_at_the_first_file(
    db, results, folder, experiment_id, monkeypatch
) -> None:
    """Each further try would wait out its own server-selection timeout."""
    real_put = worker.results.put_experiment_file
    calls = {"n": 0}

    def unreachable_once(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise ServerSelectionTimeoutError("no server answered the test")
        return real_put(*args, **kwargs)

    monkeypatch.setattr(worker.results, "put_experiment_file", unreachable_once)
    for name in ("a.txt", "b.txt", "c.txt"):
        _write(folder / name, name)

    report = results.sync(final=True)

    assert calls["n"] == 1
    assert report.pending == ("a.txt", "b.txt", "c.txt")
    assert results.sync(final=True).uploaded == ("a.txt", "b.txt", "c.txt")
    assert _stored(db, experiment_id, "c.txt") == [b"c.txt"]


def test_a_mongodb_failure_while_setting_fields_is_retried(
    db, results, folder, experiment_id, monkeypatch
) -> None:
    real_store = worker.results.store_field_value
    calls = {"n": 0}

    def flaky_store(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise AutoReconnect("primary stepped down")
        return real_store(*args, **kwargs)

    monkeypatch.setattr(worker.results, "store_field_value", flaky_store)
    _write(folder / "scores.json", {"_scores": {"F1": 1.0}})

    assert results.sync().pending == ("scores.json",)
    assert results.sync().uploaded == ("scores.json",)
    assert _experiment(db, experiment_id)["_scores"] == {"F1": 1.0}


def test_large_charts_from_a_json_file_live_outside_the_document(
    db, folder, experiment_id, project_id
) -> None:
    charts = {
        "columnNames": ["train", "x"],
        "columns": [[i * 0.25 for i in range(20_000)], list(range(20_000))],
    }
    _write(folder / "chart.json", {"_charts": charts, "Small": 1})
    results = ResultsSync(
        db, folder, experiment_id, project_id, max_file_bytes=10_000_000, field_limit=10_000
    )

    assert results.sync().uploaded == ("chart.json",)

    doc = _experiment(db, experiment_id)
    assert is_large_ref(doc["_charts"])
    assert doc["Small"] == 1
    assert len(bson.encode(doc)) < 1_000
    assert resolve_large_fields(db, doc)["_charts"] == charts
    assert "_files" not in doc

    charts["columns"][0][0] = -1.0
    _write(folder / "chart.json", {"_charts": charts})
    assert results.sync().uploaded == ("chart.json",)
    doc = _experiment(db, experiment_id)
    assert resolve_large_fields(db, doc)["_charts"] == charts
    assert db["fs.files"].count_documents({"metadata.field": "_charts"}) == 1


def test_a_field_that_shrinks_leaves_no_large_version_behind(
    db, folder, experiment_id, project_id, monkeypatch
) -> None:
    """A small value replaces a large one (also one an earlier worker stored); a field
    only ever small is looked up in GridFS once, not on every pass."""
    looked = []
    real_delete = tasks.fields._delete_large_versions
    monkeypatch.setattr(
        tasks.fields,
        "_delete_large_versions",
        lambda *args, **kwargs: looked.append(args[2]) or real_delete(*args, **kwargs),
    )

    def sync(content: dict, first: ResultsSync | None = None) -> ResultsSync:
        _write(folder / "progress.json", content)
        results = first or ResultsSync(
            db, folder, experiment_id, project_id, max_file_bytes=1_000_000, field_limit=1_000
        )
        assert results.sync().uploaded == ("progress.json",)
        return results

    results = sync({"notes": "x" * 5_000, "loss": 1.0})
    assert db["fs.files"].count_documents({"metadata.field": "notes"}) == 1
    sync({"notes": "short", "loss": 0.5}, results)
    assert db["fs.files"].count_documents({"metadata.field": "notes"}) == 0
    sync({"notes": "short", "loss": 0.25}, results)
    assert looked.count("loss") == 1  # known small since its first pass

    sync({"notes": "y" * 5_000, "loss": 0.2}, results)
    restarted = sync({"notes": "short again", "loss": 0.1})  # a new worker's first pass
    assert db["fs.files"].count_documents({"metadata.field": "notes"}) == 0
    assert _experiment(db, experiment_id)["notes"] == "short again"
    sync({"notes": "short again", "loss": 0.05}, restarted)
    assert looked.count("loss") == 2  # once by each writer


def test_a_missing_folder_is_an_empty_pass(db, tmp_path, experiment_id, project_id) -> None:
    results = ResultsSync(db, tmp_path / "not-yet", experiment_id, project_id, max_file_bytes=100)

    assert results.sync(final=True) == SyncReport()


def test_a_value_bson_cannot_hold_is_noted(db, results, folder, experiment_id) -> None:
    _write(folder / "fields.json", '{"huge": 123456789012345678901234567890, "ok": 1}')

    report = results.sync()

    assert report.uploaded == ("fields.json",)
    (note,) = report.notes
    assert note.startswith("fields.json: field 'huge' cannot be stored in MongoDB (")
    doc = _experiment(db, experiment_id)
    assert doc["ok"] == 1
    assert "huge" not in doc


def test_a_reported_step_with_scores_joins_the_history(db, results, folder, experiment_id):
    _write(folder / "progress.json", {"_scores": {"loss": 0.9}, "_step": 10})
    assert results.sync().steps == (10,)
    assert results.sync().steps == ()  # unchanged file: nothing new
    _write(folder / "progress.json", {"_scores": {"loss": 0.4}, "_step": 30.0})
    assert results.sync().steps == (30,)
    _write(folder / "progress.json", {"_scores": {"loss": 0.3}, "_step": "late"})
    assert results.sync().steps == ()
    points = list(db["history"].find({"experiment": experiment_id}).sort("step", 1))
    assert [(p["step"], p["scores"]) for p in points] == [(10, {"loss": 0.9}), (30, {"loss": 0.4})]
    doc = db["experiments"].find_one({"_id": experiment_id})
    assert doc["_scores"] == {"loss": 0.3}
    assert doc["_step"] == "late"  # kept as the program wrote it, but no point
