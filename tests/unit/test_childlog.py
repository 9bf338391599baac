"""Which lines of `fglab up`'s children reach the console, and the tail of a log file."""

from __future__ import annotations

from pathlib import Path

from fglab.childlog import LineFilter, tail

CELERY_START = "\n".join(
    [
        "/venv/lib/python3.13/site-packages/celery/platforms.py:893: "
        "SecurityWarning: You're running the worker with superuser privileges: this is",
        "absolutely not recommended!",
        "",
        "Please specify a different user using the --uid option.",
        "",
        "User information: uid=0 euid=0 gid=0 egid=0",
        "",
        "  _warn_or_raise_security_error(egid, euid, gid, uid,",
        " ",
        " -------------- celery@box v5.7.0 (collider)",
        "--- ***** ----- ",
        "- ** ---------- .> transport:   redis://127.0.0.1:6379/0",
        "[2026-12-02 05:56:05,852: INFO/MainProcess] Connected to redis://127.0.0.1:6379/0",
        "[2026-12-02 05:56:05,853: WARNING/MainProcess] machine box: heartbeat not stored: timeout",
        "[2026-12-02 05:56:06,001: INFO/MainProcess] celery@box ready.",
        "[2026-12-02 05:56:07,100: ERROR/MainProcess] "
        "Task fglab.run_experiment[1] raised unexpected: boom",
        "Traceback (most recent call last):",
        '  File "x.py", line 1, in <module>',
        "ValueError: boom",
        "[2026-12-02 05:56:08,000: INFO/MainProcess] Task fglab.add_project[2] succeeded",
        "",
    ]
)


def shown(text: str) -> list[str]:
    lines = LineFilter()
    return [line for line in text.splitlines() if lines.shows(line)]


def test_celery_banner_info_and_root_warning_stay_out_warnings_and_errors_show() -> None:
    assert shown(CELERY_START) == [
        "[2026-12-02 05:56:05,853: WARNING/MainProcess] machine box: heartbeat not stored: timeout",
        "[2026-12-02 05:56:07,100: ERROR/MainProcess] Task fglab.run_experiment[1] raised "
        "unexpected: boom",
        "Traceback (most recent call last):",
        '  File "x.py", line 1, in <module>',
        "ValueError: boom",
    ]


def test_a_python_warning_shows_and_the_banner_after_it_does_not() -> None:
    text = "/app/x.py:3: DeprecationWarning: old\n  old()\n\n -------------- celery@box v5.7.0\n"
    assert shown(text) == ["/app/x.py:3: DeprecationWarning: old", "  old()"]


def test_web_and_flower_records_by_level() -> None:
    text = (
        "2026-12-02 05:56:05,781 INFO waitress: Serving on http://127.0.0.1:5080\n"
        "2026-12-02 05:56:05,790 WARNING fglab: FGLab listens on 0.0.0.0 without a PASSWORD\n"
        "[I 261202 05:56:05 command:177] Visit me at http://127.0.0.1:5555\n"
        "[W 261202 05:56:06 inspector:98] Inspect method stats failed\n"
        "[E 261202 05:56:07 web:1] Uncaught exception GET /\n"
        "    HTTPServerRequest(protocol='http')\n"
    )
    assert shown(text) == [
        "2026-12-02 05:56:05,790 WARNING fglab: FGLab listens on 0.0.0.0 without a PASSWORD",
        "[E 261202 05:56:07 web:1] Uncaught exception GET /",
        "    HTTPServerRequest(protocol='http')",
    ]


def test_tail_gives_the_last_lines_or_none(tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    log.write_text("".join(f"line {n}\n" for n in range(40)))
    assert tail(log, 3) == ["line 37", "line 38", "line 39"]
    assert tail(tmp_path / "missing.log") == []
