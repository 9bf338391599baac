"""GridFS files: upload, replace, download, delete; nothing is ever left orphaned."""

from __future__ import annotations

import io

import pytest
from bson import ObjectId

from fglab.app import create_app
from tests.integration.api.helpers import (
    EXAMPLE_SCHEMA,
    assert_no_orphans,
    counts,
    upload_files,
    upload_schema,
)

#: Two GridFS chunks (255 KiB each), yet under the 500 KiB at which Werkzeug's test client
#: spools a request body to a temporary file it never closes.
BIG = bytes(range(256)) * 1500


def _stored(db, experiment_id: str, filename: str) -> list[dict]:
    return list(
        db["fs.files"].find({"metadata.experiment": ObjectId(experiment_id), "filename": filename})
    )


def _listed(db, experiment_id: str) -> list[dict]:
    return db.experiments.find_one({"_id": ObjectId(experiment_id)})["_files"]


def test_upload_several_files(client, db, project, experiment_id) -> None:
    response = upload_files(
        client,
        experiment_id,
        (b'{"acc": 0.9}', "metrics.json", "application/json"),
        (BIG, "weights.bin", "application/x-weights"),
        (b"", "empty.log", "text/plain"),
    )

    assert response.status_code == 200
    listed = _listed(db, experiment_id)
    assert [(f["filename"], f["mimetype"]) for f in listed] == [
        ("metrics.json", "application/json"),
        ("weights.bin", "application/x-weights"),
        ("empty.log", "text/plain"),
    ]
    assert response.get_json() == {"_files": [{**f, "_id": str(f["_id"])} for f in listed]}
    for entry, content in zip(listed, (b'{"acc": 0.9}', BIG, b""), strict=True):
        stored = db["fs.files"].find_one({"_id": entry["_id"]})
        assert stored["filename"] == entry["filename"]
        assert stored["length"] == len(content)
        assert stored["metadata"]["experiment"] == ObjectId(experiment_id)
        assert stored["metadata"]["project"] == ObjectId(project["_id"])
        assert stored["metadata"]["contentType"] == entry["mimetype"]
        chunks = db["fs.chunks"].find({"files_id": entry["_id"]}).sort("n", 1)
        assert b"".join(c["data"] for c in chunks) == content
    assert db["fs.chunks"].count_documents({}) == 1 + 2 + 0
    assert_no_orphans(db)


def test_download_has_name_and_stored_content_type(client, db, experiment_id) -> None:
    upload_files(client, experiment_id, (b'{"acc": 0.9}', "metrics.json", "application/json"))
    file_id = _listed(db, experiment_id)[0]["_id"]

    response = client.get(f"/api/v1/files/{file_id}")

    assert response.status_code == 200
    assert response.data == b'{"acc": 0.9}'
    assert response.mimetype == "application/json"
    assert response.headers["Content-Disposition"] == "attachment; filename=metrics.json"
    assert response.headers["Content-Length"] == str(len(b'{"acc": 0.9}'))
    response.close()


def test_download_of_a_multi_chunk_file(client, db, experiment_id) -> None:
    upload_files(client, experiment_id, (BIG, "weights.bin", "application/x-weights"))
    file_id = _listed(db, experiment_id)[0]["_id"]

    response = client.get(f"/api/v1/files/{file_id}")

    assert response.status_code == 200
    assert response.data == BIG
    assert response.mimetype == "application/x-weights"
    assert response.headers["Content-Disposition"] == "attachment; filename=weights.bin"
    response.close()


def test_download_of_a_non_ascii_name(client, db, experiment_id) -> None:
    upload_files(client, experiment_id, (b"x", "résumé des scores.txt", "text/plain"))
    file_id = _listed(db, experiment_id)[0]["_id"]

    response = client.get(f"/api/v1/files/{file_id}")

    assert response.status_code == 200
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith("attachment;")
    assert "filename*=UTF-8''r%C3%A9sum%C3%A9%20des%20scores.txt" in disposition
    response.close()


def test_replace_keeps_only_the_last_version(client, db, experiment_id) -> None:
    upload_files(client, experiment_id, (BIG, "model.ckpt", "application/x-ckpt"))
    old_id = _stored(db, experiment_id, "model.ckpt")[0]["_id"]
    assert db["fs.chunks"].count_documents({"files_id": old_id}) == 2

    response = upload_files(client, experiment_id, (b"v2", "model.ckpt", "application/x-v2"))

    assert response.status_code == 200
    stored = _stored(db, experiment_id, "model.ckpt")
    assert len(stored) == 1
    new_id = stored[0]["_id"]
    assert new_id != old_id
    assert db["fs.chunks"].count_documents({"files_id": old_id}) == 0
    assert db["fs.files"].count_documents({"_id": old_id}) == 0
    assert _listed(db, experiment_id) == [
        {"_id": new_id, "filename": "model.ckpt", "mimetype": "application/x-v2"}
    ]
    download = client.get(f"/api/v1/files/{new_id}")
    assert download.data == b"v2"
    assert download.mimetype == "application/x-v2"
    download.close()
    assert client.get(f"/api/v1/files/{old_id}").status_code == 404
    assert_no_orphans(db)


def test_replace_keeps_other_names_and_their_order(client, db, experiment_id) -> None:
    upload_files(
        client,
        experiment_id,
        (b"a1", "a.txt", "text/plain"),
        (b"b1", "b.txt", "text/plain"),
    )

    upload_files(client, experiment_id, (b"a2", "a.txt", "text/plain"))

    listed = _listed(db, experiment_id)
    assert [f["filename"] for f in listed] == ["a.txt", "b.txt"]
    contents = {}
    for entry in listed:
        download = client.get(f"/api/v1/files/{entry['_id']}")
        contents[entry["filename"]] = download.data
        download.close()
    assert contents == {"a.txt": b"a2", "b.txt": b"b1"}
    assert db["fs.files"].count_documents({}) == 2
    assert_no_orphans(db)


def test_same_name_twice_in_one_upload_keeps_the_last(client, db, experiment_id) -> None:
    response = upload_files(
        client,
        experiment_id,
        (b"first", "log.txt", "text/plain"),
        (b"second", "log.txt", "text/plain"),
    )

    assert response.status_code == 200
    stored = _stored(db, experiment_id, "log.txt")
    assert len(stored) == 1
    assert [f["filename"] for f in _listed(db, experiment_id)] == ["log.txt"]
    download = client.get(f"/api/v1/files/{stored[0]['_id']}")
    assert download.data == b"second"
    download.close()
    assert_no_orphans(db)


def test_same_name_in_two_experiments_is_two_files(client, db, new_experiment) -> None:
    first, second = new_experiment(seed=1), new_experiment(seed=2)
    upload_files(client, first, (b"1", "out.txt", "text/plain"))

    upload_files(client, second, (b"2", "out.txt", "text/plain"))

    assert len(_stored(db, first, "out.txt")) == 1
    assert len(_stored(db, second, "out.txt")) == 1
    assert_no_orphans(db)


def test_content_type_is_guessed_from_the_name(client, db, experiment_id) -> None:
    upload_files(client, experiment_id, (b"\x89PNG", "loss.png", "application/octet-stream"))

    entry = _listed(db, experiment_id)[0]

    assert entry["mimetype"] == "image/png"
    assert db["fs.files"].find_one({"_id": entry["_id"]})["metadata"]["contentType"] == "image/png"


def test_upload_keeps_only_the_base_name(client, db, experiment_id) -> None:
    upload_files(
        client,
        experiment_id,
        (b"x", "../../etc/passwd", "text/plain"),
        (b"y", "results/run1/scores.csv", "text/csv"),
    )

    assert [f["filename"] for f in _listed(db, experiment_id)] == ["passwd", "scores.csv"]
    assert_no_orphans(db)


def test_upload_without_files_is_refused(client, db, experiment_id) -> None:
    before = counts(db)

    response = client.put(
        f"/api/v1/experiments/{experiment_id}/files",
        data={"other": (io.BytesIO(b"x"), "x.txt")},
        content_type="multipart/form-data",
    )

    assert response.status_code == 400
    assert response.get_json() == {
        "error": "No files uploaded; send them as multipart field '_files'"
    }
    assert counts(db) == before
    assert _listed(db, experiment_id) == []


def test_unusable_file_name_stores_nothing(client, db, experiment_id) -> None:
    before = counts(db)

    response = upload_files(
        client, experiment_id, (b"ok", "good.txt", "text/plain"), (b"x", "..", "text/plain")
    )

    assert response.status_code == 400
    assert response.get_json() == {"error": "File name '..' is not usable"}
    assert counts(db) == before
    assert _listed(db, experiment_id) == []


def test_file_over_the_limit_stores_nothing(settings, store, db) -> None:
    client = create_app(settings.with_changes(max_file_bytes=10), store=store).test_client()
    project = upload_schema(client, EXAMPLE_SCHEMA).get_json()
    experiment_id = client.post(
        f"/api/v1/projects/{project['_id']}/experiment?queue=true",
        json={k: v["default"] for k, v in EXAMPLE_SCHEMA.items()},
    ).get_json()["_id"]
    before = counts(db)

    response = upload_files(
        client,
        experiment_id,
        (b"small", "small.txt", "text/plain"),
        (b"x" * 11, "big.txt", "text/plain"),
    )

    assert response.status_code == 400
    assert response.get_json() == {"error": "File 'big.txt' has 11 bytes; the limit is 10"}
    assert counts(db) == before


def test_delete_experiment_files(client, db, new_experiment) -> None:
    doomed, kept = new_experiment(seed=1), new_experiment(seed=2)
    upload_files(client, doomed, (BIG, "a.bin", "application/x-a"), (b"b", "b.txt", "text/plain"))
    upload_files(client, kept, (b"k", "k.txt", "text/plain"))

    response = client.delete(f"/api/v1/experiments/{doomed}/files")

    assert response.status_code == 200
    assert response.get_json() == {"deleted": 2}
    assert _listed(db, doomed) == []
    assert db["fs.files"].count_documents({"metadata.experiment": ObjectId(doomed)}) == 0
    assert len(_listed(db, kept)) == 1
    assert db["fs.files"].count_documents({}) == 1
    assert db["fs.chunks"].count_documents({}) == 1
    assert db.experiments.count_documents({}) == 2  # the experiments stay
    assert_no_orphans(db)


def test_delete_experiment_files_when_there_are_none(client, db, experiment_id) -> None:
    response = client.delete(f"/api/v1/experiments/{experiment_id}/files")

    assert response.status_code == 200
    assert response.get_json() == {"deleted": 0}
    assert _listed(db, experiment_id) == []


def test_delete_project_files(client, db, project, new_experiment) -> None:
    other = upload_schema(client, EXAMPLE_SCHEMA, "other.json").get_json()
    mine = [new_experiment(seed=1), new_experiment(seed=2)]
    theirs = new_experiment(other["_id"])
    upload_files(client, mine[0], (BIG, "a.bin", "application/x-a"), (b"b", "b.txt", "text/plain"))
    upload_files(client, mine[1], (b"c", "c.txt", "text/plain"))
    upload_files(client, theirs, (b"t", "t.txt", "text/plain"))

    response = client.delete(f"/api/v1/projects/{project['_id']}/experiments/files")

    assert response.status_code == 200
    assert response.get_json() == {"deleted": 3}
    assert all(_listed(db, e) == [] for e in mine)
    assert db.experiments.count_documents({}) == 3  # the experiments stay
    assert [f["filename"] for f in _listed(db, theirs)] == ["t.txt"]
    assert db["fs.files"].count_documents({}) == 1
    assert db["fs.chunks"].count_documents({}) == 1
    assert_no_orphans(db)


def test_bad_file_id_is_400(client) -> None:
    response = client.get("/api/v1/files/weights.bin")

    assert response.status_code == 400
    assert response.get_json() == {
        "error": "File ID 'weights.bin' is not a valid ObjectId (24 hex digits)"
    }


@pytest.mark.parametrize("file_id", [str(ObjectId())])
def test_unknown_file_is_404(client, file_id: str) -> None:
    response = client.get(f"/api/v1/files/{file_id}")

    assert response.status_code == 404
    assert response.get_json() == {"error": f"File ID {file_id} does not exist"}
