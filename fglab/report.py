"""Report a program's scores, charts, notes and files to FGLab, from inside the program.

    from fglab.report import Reporter

    reporter = Reporter()
    for epoch in range(1, epochs + 1):
        ...
        reporter.report(step=epoch, loss=loss, accuracy=accuracy)
    reporter.chart("loss", epochs_run, train=train_losses, validation=val_losses)
    reporter.note("best at epoch 7")
    reporter.save("model.pt")

It writes the results folder the machine's worker uploads: JSON files whose fields land on
the experiment (``scores.json``: ``_scores`` and ``_step``, each new step also a point of
the experiment's history; ``charts.json``: ``_charts``; ``notes.json``: ``_notes``;
``fields.json``: custom fields) and copies of files, which go to GridFS. Every write is
atomic (written next to the folder, then renamed in), so the worker never reads half a
file.

The results folder is, in this order: the ``results_dir`` given; ``FGLAB_RESULTS_DIR``,
which the fleet's worker sets for every run; ``results/<_id>`` under the working folder
when the command line carries FGMachine's ``_id`` option (any option style). With none
of them the program runs outside FGLab: the Reporter warns once and writes nothing.

Reporting never stops the program: outside FGLab, on a failed write or on a value FGLab
cannot store, it warns (``ReporterWarning``) and carries on. Standard library only, and
nothing else of FGLab is imported, so this file also works copied next to a program.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["Reporter", "ReporterWarning", "results_folder"]

#: The variable the fleet's worker sets to the run's results folder.
RESULTS_ENV = "FGLAB_RESULTS_DIR"
#: The names of the JSON files a Reporter writes in the results folder.
SCORES_FILE = "scores.json"
CHARTS_FILE = "charts.json"
NOTES_FILE = "notes.json"
FIELDS_FILE = "fields.json"


class ReporterWarning(UserWarning):
    """Something was not reported (outside FGLab, a failed write, an unusable value)."""


def results_folder(
    argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None
) -> Path | None:
    """Where this run's results go, from the worker's variable or ``_id`` on the command line.

    None outside FGLab. `argv` and `env` default to the process's own.
    """
    env = os.environ if env is None else env
    if env.get(RESULTS_ENV):
        return Path(env[RESULTS_ENV])
    experiment_id = _experiment_id(sys.argv[1:] if argv is None else argv)
    return Path("results", experiment_id) if experiment_id else None


def _experiment_id(argv: Sequence[str]) -> str | None:
    """``_id``'s value in FGMachine's styles: ``--_id=X``, ``--_id X``, ``-_id X``, ``_id X``."""
    for i, arg in enumerate(argv):
        if arg.startswith("--_id="):
            return arg.split("=", 1)[1] or None
        if arg in ("_id", "-_id", "--_id") and i + 1 < len(argv):
            return argv[i + 1] or None
    return None


class Reporter:
    """Writes one run's results folder in the format FGLab's worker reads.

    Scores accumulate: :meth:`report` sets the names it is given and keeps the others, so
    ``_scores`` always holds the latest value of each score. Notes accumulate as lines.
    """

    def __init__(self, results_dir: str | os.PathLike[str] | None = None) -> None:
        folder = Path(results_dir) if results_dir is not None else results_folder()
        self.folder: Path | None = folder
        self._scores: dict[str, Any] = {}
        self._charts: dict[str, dict[str, Any]] = {}
        self._notes: list[str] = []
        self._fields: dict[str, Any] = {}
        if folder is None:
            _warn(
                "fglab.report: no results folder (not run by FGLab: no results_dir, no "
                f"{RESULTS_ENV}, no _id option); nothing will be reported"
            )

    @property
    def active(self) -> bool:
        """Whether reports are written (False outside FGLab)."""
        return self.folder is not None

    def report(self, step: int | None = None, **scores: float) -> None:
        """Set scores, at a whole-number `step` (epoch, iteration) when given.

        Each new step becomes a point of the experiment's history, which sweeps prune on;
        steps reported faster than the worker reads (tens of milliseconds) are sampled.
        """
        if step is not None and (
            isinstance(step, bool)
            or not isinstance(step, int | float)
            or not float(step).is_integer()
        ):
            _warn(f"fglab.report: step {step!r} is not a whole number; not reported")
            return
        self._scores.update(scores)
        value: dict[str, Any] = {"_scores": dict(self._scores)}
        if step is not None:
            value["_step"] = int(step)
        self._write_json(SCORES_FILE, value)

    def chart(
        self,
        name: str,
        x: Sequence[float] | None,
        *series: Sequence[float],
        x_label: str | None = None,
        y_label: str | None = None,
        **named: Sequence[float],
    ) -> None:
        """Draw (or redraw) the chart `name`: each series against the values `x`.

        Series come by name (``train=[...]``) or by position (named after the chart,
        numbered when several). `x` None plots each series against its index. Calling it
        again with the same `name` replaces that chart; the experiment page draws every
        chart the run made.
        """
        columns: dict[str, list[Any]] = {}
        if len(series) == 1:
            columns[name] = list(series[0])
        else:
            columns.update((f"{name} {i}", list(values)) for i, values in enumerate(series, 1))
        columns.update((key, list(values)) for key, values in named.items())
        if not columns:
            _warn(f"fglab.report: chart {name!r} has no series; not reported")
            return
        config: dict[str, Any] = {"title": {"text": name}}
        data: dict[str, Any] = {}
        if x is not None:
            x_name = x_label or "x"
            data["xs"] = dict.fromkeys(columns, x_name)
            columns[x_name] = list(x)
        config["columnNames"] = list(columns)
        config["data"] = {**data, "columns": list(columns.values())}
        axis = {key: {"label": label} for key, label in (("x", x_label), ("y", y_label)) if label}
        if axis:
            config["axis"] = axis
        self._charts[name] = config
        charts = list(self._charts.values())
        # One chart is stored as the object itself, as FGLab's programs always wrote it.
        self._write_json(CHARTS_FILE, {"_charts": charts[0] if len(charts) == 1 else charts})

    def note(self, text: str) -> None:
        """Add a line to the experiment's notes (``_notes``, also editable on its page)."""
        self._notes.append(str(text))
        self._write_json(NOTES_FILE, {"_notes": "\n".join(self._notes)})

    def set(self, **fields: Any) -> None:
        """Set custom fields of the experiment (JSON values; names may not start with ``_``)."""
        for key in [k for k in fields if k.startswith("_") or "." in k or k.startswith("$")]:
            _warn(f"fglab.report: field {key!r} is FGLab's or not a plain name; not set")
            del fields[key]
        self._fields.update(fields)
        if fields:
            self._write_json(FIELDS_FILE, dict(self._fields))

    def save(self, path: str | os.PathLike[str], name: str | None = None) -> None:
        """Copy the file at `path` into the results folder (as `name`, default its own
        name), so it is stored with the experiment; saving a name again replaces it."""
        if self.folder is None:
            return
        target = _inside(self.folder, name or Path(path).name)
        if target is None:
            _warn(f"fglab.report: file name {name!r} leaves the results folder; not saved")
            return
        self._atomically(target, lambda tmp: shutil.copyfile(path, tmp))

    # Writing -------------------------------------------------------------------------

    def _write_json(self, name: str, value: Mapping[str, Any]) -> None:
        if self.folder is None:
            return
        try:
            text = json.dumps(value, indent=1, default=_plain)
        except (TypeError, ValueError) as e:
            _warn(f"fglab.report: {name} not written: {e}")
            return
        self._atomically(self.folder / name, lambda tmp: Path(tmp).write_text(text))

    def _atomically(self, target: Path, write: Any) -> None:
        """Write to a temporary file beside the results folder, then rename it into place.

        Beside, not inside: the worker uploads every file inside the folder, a
        half-written temporary one included.
        """
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            spare = self.folder.parent if self.folder is not None else target.parent
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=spare)
            os.close(fd)
            try:
                write(tmp)
                os.replace(tmp, target)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        except OSError as e:
            _warn(f"fglab.report: {target} not written: {e}")


def _inside(folder: Path, name: str) -> Path | None:
    """`folder / name` when `name` is a relative path that stays inside `folder`."""
    parts = Path(name).parts
    if not parts or Path(name).is_absolute() or ".." in parts:
        return None
    return folder.joinpath(*parts)


def _plain(value: Any) -> Any:
    """JSON for what ``json`` cannot write itself: numpy scalars and arrays, tuples, sets."""
    for method in ("item", "tolist"):  # numpy and torch scalars / arrays
        if callable(getattr(value, method, None)):
            return getattr(value, method)()
    if isinstance(value, Iterable):
        return list(value)
    raise TypeError(f"{value!r} of type {type(value).__name__} is not JSON")


def _warn(message: str) -> None:
    warnings.warn(message, ReporterWarning, stacklevel=3)
