"""A stand-in for a researcher's program, driven by its options (``--mode=...``).

Reads ``--name=value`` options as FGMachine's double-dash style passes them; writes
into ``<results>/<_id>/``.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

# A 1x1 PNG.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)


def options() -> dict[str, str]:
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


def main() -> int:
    opts = options()
    folder = Path(opts["results"]) / opts["_id"]
    folder.mkdir(parents=True, exist_ok=True)
    mode = opts.get("mode", "write")
    if mode == "write":
        (folder / "scores.json").write_text(
            json.dumps({"_scores": {"accuracy": 0.91, "loss": 0.2}})
        )
        chart = {
            "columnNames": ["train", "x"],
            "data": {"xs": {"train": "x"}, "columns": [[1.0, 0.5, 0.25], [1, 2, 3]]},
        }
        (folder / "chart.json").write_text(json.dumps({"_charts": chart}))
        (folder / "notes.json").write_text(
            json.dumps({"Notes": "first", "Framework": {"Name": "none"}})
        )
        (folder / "plot.png").write_bytes(PNG)
        (folder / "log.txt").write_text("epoch 1\n")
        time.sleep(float(opts.get("pause", "2.5")))
        (folder / "notes.json").write_text(
            json.dumps({"Notes": "final", "Framework": {"Name": "none"}})
        )
        (folder / "log.txt").write_text("epoch 1\nepoch 2\n")
        print("done writing", flush=True)
        return 0
    if mode == "sleep":
        gpu = os.environ.get("CUDA_VISIBLE_DEVICES")
        print(f"started {opts['_id']} gpu={gpu} argv={sys.argv[1:]}", flush=True)
        (folder / "env.json").write_text(
            json.dumps(
                {
                    "gpu_env": {"CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES")},
                    "argv": sys.argv[1:],
                }
            )
        )
        wait_for_file(Path(opts["until"]), float(opts.get("limit", "60")))
        return 0
    if mode == "fail":
        print("about to fail", file=sys.stderr, flush=True)
        return 3
    if mode == "tree":
        children = [
            subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
            for _ in range(2)
        ]
        Path(opts["pids"]).write_text(json.dumps([os.getpid(), *[c.pid for c in children]]))
        time.sleep(600)
        return 0
    if mode == "bigchart":
        n = int(opts.get("points", "500000"))
        train = [1.0 / (1 + i) for i in range(n)]
        val = [2.0 / (2 + i) for i in range(n)]
        xs = list(range(n))
        chart = {
            "columnNames": ["train", "val", "x1", "x2"],
            "data": {"xs": {"train": "x1", "val": "x2"}, "columns": [train, val, xs, xs]},
        }
        (folder / "chart.json").write_text(json.dumps({"_charts": chart}))
        return 0
    if mode == "print":
        for i in range(int(opts.get("lines", "1000"))):
            stream = sys.stdout if i % 2 == 0 else sys.stderr
            print(f"line {i}", file=stream, flush=True)
        return 0
    print(f"unknown mode {mode}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
