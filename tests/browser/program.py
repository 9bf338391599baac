"""The program the browser tests' machine runs, driven by its options (``--mode=...``).

Reads ``--name=value`` options as FGMachine's double-dash style passes them and writes
into ``<results>/<_id>/``. Modes:

- ``quick``: one log line and ``_scores``; exits at once (grid searches, tables).
- ``report``: numbered log lines (``epoch 1/N ...``); with ``--until=<file>`` it stops
  half way until that file exists. Then ``_scores``, ``_charts`` (two series on x arrays
  of their own, with axis labels) and an image, ``plot.png``.
- ``bigchart``: one ``_charts`` series of ``--points`` values.
- ``curve``: a loss curve over ``--epochs`` steps of 0.15 s, ``lr + 1 / step``, each step
  rewriting ``progress.json`` with ``_scores`` and ``_step`` (a sweep's trial); then
  ``_charts`` as ``report`` writes them.
- ``sleep``: waits for the ``--until`` file (or two minutes), to be killed.
- ``fail``: a line on stderr, exit status 3.
"""

import json
import struct
import sys
import time
import zlib
from pathlib import Path


def options() -> dict:
    parsed = {}
    args = sys.argv[1:]
    for i, arg in enumerate(args):
        if arg.startswith("--") and "=" in arg:
            name, value = arg[2:].split("=", 1)
            parsed[name] = value
        elif arg.startswith("--") and i + 1 < len(args):
            parsed[arg[2:]] = args[i + 1]
    return parsed


def wait_for_file(path: Path, limit: float) -> None:
    deadline = time.monotonic() + limit
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)


def write_json(folder: Path, name: str, value: object) -> None:
    """Write beside the folder, then rename in: the uploader never sees half a file."""
    tmp = folder.parent / f".{folder.name}.{name}.tmp"
    tmp.write_text(json.dumps(value))
    tmp.replace(folder / name)


def png(width: int, height: int) -> bytes:
    """A `width` x `height` RGB PNG: a blue-to-orange gradient, easy to see on a page."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = []
    for _ in range(height):
        row = bytearray(b"\x00")
        for x in range(width):
            t = x / max(1, width - 1)
            row += bytes((round(31 + 224 * t), round(119 + 8 * t), round(180 - 166 * t)))
        rows.append(bytes(row))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"".join(rows), 9))
        + chunk(b"IEND", b"")
    )


def chart(epochs: int) -> dict:
    """Train loss per epoch and validation loss every other epoch: two different x arrays."""
    train_x = list(range(1, epochs + 1))
    val_x = list(range(2, epochs + 1, 2)) or [epochs]
    return {
        "_charts": {
            "columnNames": ["train", "validation", "epoch", "val_epoch"],
            "data": {
                "xs": {"train": "epoch", "validation": "val_epoch"},
                "columns": [
                    [round(1 / e, 4) for e in train_x],
                    [round(1.5 / e, 4) for e in val_x],
                    train_x,
                    val_x,
                ],
            },
            "axis": {"x": {"label": "epoch"}, "y": {"label": "loss"}},
        }
    }


def main() -> int:
    opts = options()
    folder = Path(opts["results"]) / opts["_id"]
    folder.mkdir(parents=True, exist_ok=True)
    mode = opts.get("mode", "quick")
    lr = float(opts.get("lr", "0.1"))
    if mode == "quick":
        print(f"quick run, lr {lr}", flush=True)
        write_json(folder, "scores.json", {"_scores": {"accuracy": round(1 - lr, 6)}})
        return 0
    if mode == "report":
        epochs = int(opts.get("epochs", "4"))
        until = opts.get("until", "none")
        for epoch in range(1, epochs + 1):
            if until != "none" and epoch == epochs // 2 + 1:
                print("waiting for the go-ahead", flush=True)
                wait_for_file(Path(until), 60)
            print(f"epoch {epoch}/{epochs}: loss {1 / epoch:.4f}", flush=True)
        write_json(folder, "chart.json", chart(epochs))
        write_json(folder, "scores.json", {"_scores": {"accuracy": round(1 - lr, 6)}})
        (folder / "plot.png").write_bytes(png(160, 90))
        print("done", flush=True)
        return 0
    if mode == "bigchart":
        n = int(opts.get("points", "100000"))
        xs = list(range(n))
        loss = [round(1 / (1 + i) + (0.01 if i % 7 == 0 else 0), 6) for i in xs]
        chart_ = {
            "columnNames": ["loss", "step"],
            "data": {"xs": {"loss": "step"}, "columns": [loss, xs]},
        }
        write_json(folder, "chart.json", {"_charts": chart_})
        print(f"wrote {n} points", flush=True)
        return 0
    if mode == "curve":
        epochs = int(opts.get("epochs", "4"))
        for step in range(1, epochs + 1):
            write_json(folder, "progress.json", {"_scores": {"loss": lr + 1 / step}, "_step": step})
            time.sleep(0.15)
        write_json(folder, "chart.json", chart(epochs))
        return 0
    if mode == "sleep":
        print(f"sleeping until {opts.get('until')}", flush=True)
        wait_for_file(Path(opts.get("until", "none")), 120)
        return 0
    if mode == "fail":
        print("failing on purpose", file=sys.stderr, flush=True)
        return 3
    print(f"unknown mode {mode}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
