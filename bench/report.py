"""The suite's table: one row per figure, with its baseline from the same run and the ratio.

Rendered as plain text for the terminal and as Markdown for the README's "Measured here"
section; the machine it ran on heads both. Not run by itself: ``bench/suite.py`` uses it.
"""

from __future__ import annotations

import os
import platform
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from redis import Redis

REPO = Path(__file__).resolve().parents[1]
COLUMNS = ("section", "figure", "ours", "baseline", "ratio", "target", "met")


@dataclass(frozen=True)
class Row:
    """One figure. `ratio` is ours / baseline; `met` is "yes", "NO", "?" (the figure is not
    to be trusted, a note says why) or "" (no target)."""

    section: str
    figure: str
    ours: str
    baseline: str = ""
    ratio: str = ""
    target: str = ""
    met: str = ""

    def cells(self) -> tuple[str, ...]:
        return (
            self.section,
            self.figure,
            self.ours,
            self.baseline,
            self.ratio,
            self.target,
            self.met,
        )


def ratio(ours: float, baseline: float) -> str:
    """``ours / baseline`` as "1.23x"; a dash when the baseline is zero."""
    return f"{ours / baseline:.2f}x" if baseline else "-"


def met(condition: bool) -> str:
    return "yes" if condition else "NO"


def machine_lines(redis: Redis, mode: str, redis_kind: str) -> list[str]:
    """Where and how the suite ran: cores, memory, Python, Redis, the code's commit."""
    memory = _memory_gib()
    redis_version = f"{redis.info('server').get('redis_version', '?')} ({redis_kind})"
    return [
        f"Ran {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {mode} sizes, on "
        f"{platform.system()} {platform.machine()}: {os.cpu_count()} cores, "
        f"{memory} memory, Python {platform.python_version()}, Redis {redis_version}, "
        f"Celery {_version('celery')}, pymongo {_version('pymongo')}, "
        f"mongoeco {_version('mongoeco')} (memory engine).",
        f"Code: commit {_commit()} (with whatever the work tree changes).",
    ]


def load_line(when: str) -> str:
    """The load average, which says whether other work on the box shared the cores."""
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return f"Load average {when}: unknown."
    return f"Load average {when}: {one:.2f}, {five:.2f}, {fifteen:.2f} (1, 5, 15 min)."


def _memory_gib() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 2**20:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _commit() -> str:
    """HEAD's short hash; read-only (``git status`` would rewrite the index)."""
    try:
        answer = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return answer.stdout.strip()


#: (heading, text) kept as it is below the table: output of tools whose rows did not parse.
Appendix = Sequence[tuple[str, str]]


def render_text(
    header: Sequence[str], rows: Sequence[Row], notes: Sequence[str], appendix: Appendix = ()
) -> str:
    """Aligned columns for a terminal, under the header lines, with notes below."""
    table = [COLUMNS, *(row.cells() for row in rows)]
    widths = [max(len(cells[i]) for cells in table) for i in range(len(COLUMNS))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True))

    out = [*header, "", line(COLUMNS), "  ".join("-" * w for w in widths)]
    out += [line(row.cells()) for row in rows]
    out += ["", *notes] if notes else []
    for heading, text in appendix:
        out += ["", f"== {heading} ==", text.rstrip()]
    return "\n".join(text.rstrip() for text in out)


def render_markdown(
    header: Sequence[str], rows: Sequence[Row], notes: Sequence[str], appendix: Appendix = ()
) -> str:
    """A Markdown table (pipes in cells escaped); the header lines and the notes as lists."""

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

    out = [*(f"- {text}" for text in header), "", line(COLUMNS), line(["---"] * len(COLUMNS))]
    out += [line(row.cells()) for row in rows]
    out += ["", *(f"- {note}" for note in notes)] if notes else []
    for heading, text in appendix:
        out += ["", f"#### {heading}", "", "```text", text.rstrip(), "```"]
    return "\n".join(out) + "\n"
