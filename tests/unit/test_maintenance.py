"""Celery's lines about the periodic sweep are DEBUG lines; other tasks' stay at INFO."""

from __future__ import annotations

import logging

import pytest

from fglab.maintenance import TASK_LINE_LOGGERS, SweepAtDebug, quiet_sweep_lines
from tasks.contract import DISPATCH, SWEEP


def record(logger: str, args: object) -> logging.LogRecord:
    return logging.LogRecord(logger, logging.INFO, __file__, 1, "line %s", (args,), None)


def beat_line(task: str) -> logging.LogRecord:
    return logging.LogRecord(
        "celery.beat", logging.INFO, __file__, 1, "Sending due task %s (%s)", ("x", task), None
    )


@pytest.mark.parametrize(
    "line",
    [
        lambda: beat_line(SWEEP),
        lambda: record("celery.app.trace", {"name": SWEEP, "id": "1", "runtime": 0.01}),
        lambda: record("celery.worker.strategy", {"name": SWEEP, "id": "1"}),
    ],
    ids=["beat-sends", "succeeded", "received"],
)
def test_sweep_lines_are_dropped_at_info_and_kept_as_debug_at_debug(line) -> None:
    quiet = SweepAtDebug()
    made = line()
    logger = logging.getLogger(made.name)
    previous = logger.level
    try:
        logger.setLevel(logging.INFO)
        assert quiet.filter(made) is False
        made = line()
        logger.setLevel(logging.DEBUG)
        assert quiet.filter(made) is True
        assert (made.levelno, made.levelname) == (logging.DEBUG, "DEBUG")
    finally:
        logger.setLevel(previous)


def test_other_tasks_lines_pass_unchanged() -> None:
    quiet = SweepAtDebug()
    for made in (
        beat_line(DISPATCH),
        record("celery.app.trace", {"name": DISPATCH, "id": "2"}),
        logging.LogRecord("celery.app.trace", logging.INFO, __file__, 1, "plain", None, None),
    ):
        assert quiet.filter(made) is True
        assert made.levelno == logging.INFO


def test_quiet_sweep_lines_adds_one_filter_per_logger() -> None:
    quiet_sweep_lines()
    quiet_sweep_lines()
    for name in TASK_LINE_LOGGERS:
        filters = logging.getLogger(name).filters
        assert sum(isinstance(f, SweepAtDebug) for f in filters) == 1
