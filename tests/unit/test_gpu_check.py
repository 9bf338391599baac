"""bench/gpu_check.py without a GPU: it says so in one line, and its verdicts are right."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.gpu_check import HOLD_BYTES, checks

ROOT = Path(__file__).resolve().parents[2]


def test_without_a_gpu_it_fails_clearly_and_starts_nothing() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.gpu_check"], cwd=ROOT, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("gpu_check: no GPU to check on this machine: ")
    assert done.stdout == ""


def runs(*spans: tuple[int, int], seen: str = "0", memory: int = HOLD_BYTES) -> list[dict]:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    return [
        {
            "_status": "success", "_gpu": 0, "cuda_visible_devices": seen,
            "_started": at + timedelta(seconds=s), "_finished": at + timedelta(seconds=f),
            "_resources": {"gpu_memory": {"peak": memory}},
        }
        for s, f in spans
    ]  # fmt: skip


def test_the_verdicts() -> None:
    record = {"gpu_details": [{"index": 0, "name": "NVIDIA H200"}]}
    two_by_two = runs((0, 12), (0, 12), (12, 24), (12, 25))

    assert all(ok for _, ok, _ in checks("NVIDIA H200", record, two_by_two, 2 * HOLD_BYTES))
    verdicts = dict(
        (name, ok)
        for name, ok, _ in checks(
            "NVIDIA A100", record, runs((0, 12), (1, 12), (2, 12), seen="1", memory=0), 0
        )
    )
    assert verdicts["pynvml reported the real GPU on the machine record"] is False
    assert verdicts["2 ran at once, never more"] is False
    assert verdicts["each program saw CUDA_VISIBLE_DEVICES = its GPU"] is False
    assert verdicts["telemetry shows each program's GPU memory"] is False
    assert verdicts["the machine's GPU memory showed two programs at once"] is False
