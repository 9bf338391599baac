"""FGLab fleet's benchmark suite: each figure next to its baseline from the same run.

    .venv/bin/python bench/suite.py [--quick] [--markdown PATH] [--redis URL]
        [--only SECTION ...] [--store-scale-args "..."]

Needs what the integration tests need (the venv with the dev extras, Redis 7); starts
its own embedded MongoDB wire server (memory engine) and every worker it measures, and
stops them all at the end, errors and Ctrl-C included. Redis: database 13 by default,
flushed at the start and at the end, never another one.

1. Throughput: N no-op experiments (1000; --quick 200) over 2 machine workers and the
   scheduler, submitted through the batch route, against a plain Celery app
   (``bench/baseline_celery.py``) draining the same N tasks over 2 workers.
2. Operations per experiment in those two runs: MongoDB commands (counted by a proxy,
   ``bench/counting.py``) and Redis commands (``INFO commandstats``).
3. Latency on an idle worker: submit -> the program's first line, against a direct
   ``Popen`` of the same program; ``launch()`` against a plain ``Popen`` of ``true``.
4. Growth: a dispatch pass over 1 to 1000 queued experiments; 1 to 3 machine workers.
5. ``bench/bench_store_scale.py`` (when it is there), its rows added to the table.
6. Pruning: ``bench/bench_sweeps.py --only pruning``, the same sweep of 32 trials with
   and without median pruning: wall-clock saved, best found, the last step a pruned trial
   reached, step -> decision and decision -> TERM latencies.

Prints the table (and writes it as Markdown with --markdown, for the README's
"Measured here"); exits 1 when a section failed. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import signal
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from types import FrameType

# The suite builds on the integration tests' helpers (tests/), which are not installed:
# run it from a checkout.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.report import COLUMNS, Row, load_line, machine_lines, render_markdown, render_text
from bench.sections import FULL, QUICK, SECTIONS, WORKERS, Report, Sizes
from bench.services import Services, running_services

logger = logging.getLogger("bench.suite")

DEFAULT_REDIS = "redis://127.0.0.1:6379/13"


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    signal.signal(signal.SIGTERM, _exit_on_signal)  # so that everything started is stopped
    sizes = QUICK if args.quick else FULL
    if args.store_scale_args is not None:
        sizes = replace(sizes, store_scale_args=tuple(shlex.split(args.store_scale_args)))
    report = Report()
    with (
        tempfile.TemporaryDirectory(prefix="fglab-suite-") as tmp,
        running_services(None if args.own_redis else args.redis, Path(tmp)) as services,
    ):
        kind = "a redis-server of its own" if args.own_redis else f"shared, {args.redis}"
        header = [*machine_lines(services.redis, sizes.label, kind), load_line("at the start")]
        _run_sections(services, sizes, report, args.only)
        header.append(load_line("at the end"))
    report.notes[:0] = _setup_notes(sizes)
    print(render_text(header, report.rows, report.notes, report.appendix))
    if args.markdown:
        markdown = render_markdown(header, report.rows, report.notes, report.appendix)
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(markdown)
        logger.info("Markdown table written to %s", args.markdown)
    if args.json:
        _write_json(args.json, header, report)
    return 1 if report.failed else 0


def _write_json(path: Path, header: list[str], report: Report) -> None:
    document = {
        "header": header,
        "rows": [dict(zip(COLUMNS, row.cells(), strict=True)) for row in report.rows],
        "notes": report.notes,
        "failed": report.failed,
        "raw": report.raw,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2))
    logger.info("rows and counts written to %s", path)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (about 2 minutes)")
    parser.add_argument("--markdown", type=Path, help="also write the table here, as Markdown")
    parser.add_argument(
        "--json", type=Path, help="also write the rows and every count (all commands) here"
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--redis", default=DEFAULT_REDIS, help="a database of its own: it is flushed"
    )
    where.add_argument(
        "--own-redis",
        action="store_true",
        help="start a redis-server of the run's own: exact Redis counts even while other "
        "clients (a CI run) use the shared server",
    )
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="N",
        help="run only the sections whose names start with these (1-3, 4, 5, 6)",
    )
    parser.add_argument(
        "--store-scale-args", help="arguments for bench_store_scale.py instead of the default"
    )
    return parser


def _run_sections(services: Services, sizes: Sizes, report: Report, only: list[str] | None) -> None:
    """Each section in turn; one that fails becomes a FAILED row, and the next one runs."""
    for name, section in SECTIONS:
        if only and not any(name.startswith(prefix) for prefix in only):
            continue
        started = time.perf_counter()
        logger.info("section %s", name)
        try:
            section(services, sizes, report)
        except Exception as e:
            logger.exception("section %s failed", name)
            report.failed.append(name)
            report.rows.append(Row(name.split()[0], f"{name}: FAILED", f"{type(e).__name__}: {e}"))
        logger.info("section %s took %.1f s", name, time.perf_counter() - started)


def _setup_notes(sizes: Sizes) -> list[str]:
    return [
        f"FGLab: {WORKERS} machine workers (Celery, threads; capacity 0.1, so 10 programs at "
        "once each) and the scheduler with beat; experiments submitted through the batch "
        "route (Flask test client). Baseline: bench/baseline_celery.py, "
        f"{WORKERS} Celery workers with 10 threads each, tasks sent straight to its queue.",
        "Both systems reach MongoDB through the counting proxy (one more Python process on "
        "the path), so both absolute rates are below what they are without it.",
        "The program: python -S -c <append its --_id to a file>; the launches file shows "
        "what ran twice or never.",
        "Redis counts are INFO commandstats: commands run inside Lua scripts (the ledger's) "
        "count one by one, as does each command of a MULTI.",
        "ratio = ours / baseline. Growth rows: baseline = the smallest size in the same run.",
        f"Sizes: {sizes.label}.",
    ]


def _exit_on_signal(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    sys.exit(main())
