"""A run's code (``_code``) as stored by the record module and shown on its page."""

from __future__ import annotations

import pytest
from bson import ObjectId
from gridfs import GridFSBucket

from tasks import experiments
from tests.html import facts, find, page, text
from tests.integration.api.conftest import project
from tests.integration.api.helpers import OPTIONS, submit

__all__ = ["project"]  # the API tests' project fixture: the example schema, uploaded

COMMIT = "3f2a9c1d" + "0" * 32
DIFF = (
    "diff --git a/train.py b/train.py\n"
    "--- a/train.py\n+++ b/train.py\n@@ -1 +1 @@\n"
    "-lr = 0.1\n+lr = 0.2  # <script>alert(1)</script>\n"
)
GIT = {"repo": "https://git.example.org/lab/train.git", "commit": COMMIT, "branch": "main"}
RUN = {
    "command": ["/usr/bin/python3.13", "train.py", "--_id=x", "--name=a b"],
    "host": "gpu-1",
    "python": "3.13.1",
}


@pytest.fixture
def experiment_id(client, project) -> ObjectId:
    response = submit(client, project["_id"], OPTIONS)
    assert response.status_code == 201, response.get_json()
    return ObjectId(response.get_json()["_id"])


def test_a_short_diff_is_kept_inline(db, experiment_id) -> None:
    code = {**GIT, "dirty": True, **RUN}
    stored = experiments.record_code(db, experiment_id, None, code, DIFF)
    assert stored == {**code, "diff": DIFF, "diff_truncated": False}
    assert experiments.get(db, experiment_id)["_code"] == stored


def test_a_long_diff_is_kept_whole_in_gridfs_and_cut_in_the_document(db, experiment_id) -> None:
    long = DIFF + "+é" * 200
    stored = experiments.record_code(
        db, experiment_id, None, {**GIT, "dirty": True}, long, inline=100
    )
    assert stored["diff_truncated"] is True
    assert stored["diff"] == long.encode()[:100].decode()
    assert stored["diff_bytes"] == len(long.encode())
    whole = GridFSBucket(db).open_download_stream(stored["diff_file"])
    assert (whole.filename, whole.metadata["kind"]) == ("code.diff", "code")
    assert whole.read().decode() == long
    assert experiments.get(db, experiment_id, ["_files"])["_files"] == []  # not a result


def test_the_page_shows_a_dirty_checkouts_commit_branch_diff_and_command(
    client, db, experiment_id
) -> None:
    experiments.record_code(db, experiment_id, None, {**GIT, "dirty": True, **RUN}, DIFF)
    document = page(client.get(f"/experiments/{experiment_id}"))
    section = find(document, "#code")
    rows = {name: text(cell) for name, cell in facts(section).items()}
    assert rows == {
        "Commit": "3f2a9c1 dirty",
        "Branch": "main",
        "Repository": GIT["repo"],
        "Command": "/usr/bin/python3.13 train.py --_id=x '--name=a b'",
        "Host": "gpu-1",
        "Python": "3.13.1",
    }
    assert find(section, "#code-commit")["title"] == COMMIT
    assert text(find(section, "#code-dirty")) == "dirty"
    diff = find(section, "details #code-diff")
    assert diff.get_text() == DIFF  # escaped: the script in it is text
    assert not section.select("script")
    assert not section.select("#code-diff-file")


def test_the_page_links_the_whole_diff_when_it_was_cut(client, db, experiment_id) -> None:
    long = DIFF * 10
    stored = experiments.record_code(
        db, experiment_id, None, {**GIT, "dirty": True, **RUN}, long, inline=len(DIFF)
    )
    section = find(page(client.get(f"/experiments/{experiment_id}")), "#code")
    assert f"of {len(long)} bytes" in text(find(section, "details summary"))
    link = find(section, "#code-diff-file")
    assert link["href"] == f"/api/v1/files/{stored['diff_file']}"
    assert client.get(link["href"]).data.decode() == long


def test_the_page_of_a_run_outside_git_says_so_and_shows_command_and_host(
    client, db, experiment_id
) -> None:
    experiments.record_code(db, experiment_id, None, RUN)
    section = find(page(client.get(f"/experiments/{experiment_id}")), "#code")
    rows = {name: text(cell) for name, cell in facts(section).items()}
    assert rows["Commit"] == "none: its folder is not a git checkout"
    assert (rows["Host"], rows["Python"]) == ("gpu-1", "3.13.1")
    assert "Branch" not in rows and "Repository" not in rows
    assert not section.select("#code-dirty, details")


def test_a_page_without_code_has_no_code_section(client, experiment_id) -> None:
    document = page(client.get(f"/experiments/{experiment_id}"))
    assert document.select_one("#code") is None
