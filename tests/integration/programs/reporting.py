"""A program that reports through `fglab.report.Reporter` alone, as a researcher's would.

Three steps of scores, a chart, a note, a custom field and a saved file; it learns its
results folder from the worker (``FGLAB_RESULTS_DIR``), not from its options.
"""

import sys
import tempfile
import time
from pathlib import Path

from fglab.report import Reporter


def main() -> int:
    reporter = Reporter()
    if not reporter.active:
        return 3
    losses = []
    for step in (1, 2, 3):
        losses.append(round(1 / step, 3))
        reporter.report(step=step, loss=losses[-1])
        time.sleep(0.3)  # slower than the worker reads, so each step is a point
    reporter.report(accuracy=0.9)
    reporter.chart("loss", [1, 2, 3], train=losses, x_label="step", y_label="loss")
    reporter.note("reported by Reporter")
    reporter.set(model={"layers": 2})
    with tempfile.TemporaryDirectory() as scratch:
        weights = Path(scratch, "weights.bin")
        weights.write_bytes(b"\x00\x01weights")
        reporter.save(weights)
    print("reported", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
