"""`fglab.report.Reporter`: the worker's formats, atomic writes, silence outside FGLab."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fglab import report
from fglab.charts import prepare_charts
from fglab.report import Reporter, ReporterWarning, results_folder
from worker.argv import RESULTS_ENV
from worker.results import WRITABLE_RESERVED_FIELDS

REPORT_FILE = Path(report.__file__)


def read(folder: Path, name: str) -> dict:
    return json.loads((folder / name).read_text())


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return tmp_path / "results" / "5f2a00000000000000000001"


def test_scores_accumulate_with_the_step_the_history_reads(folder: Path) -> None:
    reporter = Reporter(folder)
    reporter.report(step=1, loss=0.5, accuracy=0.7)
    assert read(folder, "scores.json") == {"_scores": {"loss": 0.5, "accuracy": 0.7}, "_step": 1}
    reporter.report(step=2.0, loss=0.25)
    assert read(folder, "scores.json") == {"_scores": {"loss": 0.25, "accuracy": 0.7}, "_step": 2}
    reporter.report(test=0.9)  # no step: a final score, not a point of the history
    assert read(folder, "scores.json") == {"_scores": {"loss": 0.25, "accuracy": 0.7, "test": 0.9}}


def test_a_step_that_is_not_a_whole_number_warns_and_writes_nothing(folder: Path) -> None:
    reporter = Reporter(folder)
    for step in (1.5, True, "3", float("nan")):
        with pytest.warns(ReporterWarning, match="not a whole number"):
            reporter.report(step=step, loss=1.0)  # type: ignore[arg-type]
    assert not (folder / "scores.json").exists()


def test_a_chart_is_an_fglab_chart_that_c3_can_draw(folder: Path) -> None:
    reporter = Reporter(folder)
    reporter.chart("loss", [1, 2, 3], train=[3, 2, 1], validation=[4, 3, 2], x_label="epoch")
    chart = read(folder, "charts.json")["_charts"]
    assert chart == {
        "title": {"text": "loss"},
        "columnNames": ["train", "validation", "epoch"],
        "data": {
            "xs": {"train": "epoch", "validation": "epoch"},
            "columns": [[3, 2, 1], [4, 3, 2], [1, 2, 3]],
        },
        "axis": {"x": {"label": "epoch"}},
    }
    drawn = prepare_charts(chart)[0]
    assert drawn["data"]["columns"][0] == ["train", 3, 2, 1]

    reporter.chart("accuracy", None, [0.5, 0.7])  # by position, against the index
    reporter.chart("loss", [1, 2], train=[3, 2])  # the same name replaces that chart
    charts = read(folder, "charts.json")["_charts"]
    assert [c["title"]["text"] for c in charts] == ["loss", "accuracy"]
    assert charts[0]["data"]["columns"] == [[3, 2], [1, 2]]
    assert charts[1] == {
        "title": {"text": "accuracy"},
        "columnNames": ["accuracy"],
        "data": {"columns": [[0.5, 0.7]]},
    }
    assert len(prepare_charts(charts)) == 2


def test_notes_add_lines_and_fields_refuse_fglabs_names(folder: Path) -> None:
    reporter = Reporter(folder)
    reporter.note("first")
    reporter.note("second")
    assert read(folder, "notes.json") == {"_notes": "first\nsecond"}
    with pytest.warns(ReporterWarning, match="'_status'"):
        reporter.set(model={"layers": 2}, _status="success")
    assert read(folder, "fields.json") == {"model": {"layers": 2}}


def test_every_field_written_is_one_the_worker_takes(folder: Path) -> None:
    reporter = Reporter(folder)
    reporter.report(step=1, loss=1.0)
    reporter.chart("c", [1], y=[1])
    reporter.note("n")
    written = {key for name in os.listdir(folder) for key in read(folder, name)}
    assert written == set(WRITABLE_RESERVED_FIELDS)


def test_save_copies_a_file_in_and_refuses_names_that_leave_the_folder(
    folder: Path, tmp_path: Path
) -> None:
    source = tmp_path / "model.pt"
    source.write_bytes(b"weights")
    reporter = Reporter(folder)
    reporter.save(source)
    reporter.save(source, "checkpoints/last.pt")
    assert (folder / "model.pt").read_bytes() == b"weights"
    assert (folder / "checkpoints" / "last.pt").read_bytes() == b"weights"
    with pytest.warns(ReporterWarning, match="leaves the results folder"):
        reporter.save(source, "../elsewhere.pt")
    with pytest.warns(ReporterWarning, match="not written"):
        reporter.save(tmp_path / "missing.pt")
    assert not (folder.parent / "elsewhere.pt").exists()


def test_writes_are_atomic_renames_from_beside_the_folder(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reporter = Reporter(folder)
    reporter.report(step=1, loss=1.0)
    renames: list[tuple[Path, Path]] = []
    real_replace = os.replace

    def replace(src: str, dst: str) -> None:
        # The uploader sees the old file or the new one, never a part: the new one is
        # whole before the rename, and it was never inside the results folder.
        assert json.loads(Path(src).read_text())["_step"] == 2
        assert read(folder, "scores.json")["_step"] == 1
        renames.append((Path(src), Path(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(report.os, "replace", replace)
    reporter.report(step=2, loss=0.5)
    [(src, dst)] = renames
    assert (src.parent, dst) == (folder.parent, folder / "scores.json")
    assert sorted(os.listdir(folder)) == ["scores.json"]
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]  # no temporary left


def test_a_failed_write_warns_and_the_program_goes_on(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    reporter = Reporter(blocked / "results")
    with pytest.warns(ReporterWarning, match="not written"):
        reporter.report(step=1, loss=1.0)


def test_outside_fglab_it_warns_once_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["train.py", "--lr=0.1"])
    with pytest.warns(ReporterWarning, match="nothing will be reported") as caught:
        reporter = Reporter()
        reporter.report(step=1, loss=1.0)
        reporter.chart("loss", [1], y=[1.0])
        reporter.note("n")
        reporter.set(a=1)
        reporter.save(tmp_path / "missing")
    assert len(caught) == 1
    assert not reporter.active
    assert os.listdir(tmp_path) == []


def test_the_folder_comes_from_the_worker_or_fgmachines_id_option() -> None:
    assert RESULTS_ENV == report.RESULTS_ENV  # the name the worker sets
    assert results_folder([], {RESULTS_ENV: "/r/abc"}) == Path("/r/abc")
    for argv in (["--_id=abc"], ["--lr", "1", "--_id", "abc"], ["-_id", "abc"], ["_id", "abc"]):
        assert results_folder(argv, {}) == Path("results", "abc")
    assert results_folder(["--id=abc", "_id"], {}) is None


def test_the_file_imports_alone_with_nothing_of_fglab(tmp_path: Path) -> None:
    """Copied next to a program, it needs only the standard library."""
    (tmp_path / "report.py").write_bytes(REPORT_FILE.read_bytes())
    (tmp_path / "train.py").write_text(
        "import sys\n"
        f"sys.path[:] = [{str(tmp_path)!r}, *(p for p in sys.path if 'site-packages' not in p)]\n"
        "from report import Reporter\n"
        "Reporter().report(step=3, loss=0.5)\n"
        "print(sorted(m.split('.')[0] for m in sys.modules if m.split('.')[0] in "
        "{'fglab', 'tasks', 'worker', 'config', 'pymongo', 'bson', 'flask'}))\n"
    )
    env = {"PATH": os.environ.get("PATH", ""), RESULTS_ENV: str(tmp_path / "out")}
    done = subprocess.run(
        [sys.executable, "-I", "-W", "error", "train.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "[]\n"
    assert read(tmp_path / "out", "scores.json") == {"_scores": {"loss": 0.5}, "_step": 3}


def test_importing_fglab_report_pulls_in_nothing_heavy() -> None:
    code = (
        "import sys, fglab.report\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'fglab', 'tasks', 'worker', 'config', 'pymongo', 'flask', 'celery'}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout == "['fglab', 'fglab.report']\n"
