"""A stand-in for a researcher's program, driven by its options (``--mode=...``).

Reads ``--name=value`` options as FGMachine's double-dash style passes them; writes
into ``<results>/<_id>/``.
"""

import json
import os
import signal
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


def write_pids(path: Path, pids: list) -> None:
    """Write the pids whole (a reader never sees half a file): the program is ready."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(pids))
    tmp.replace(path)


def escaped_grandchild() -> int:
    """Start a sleeper through a child that calls setsid and exits; the sleeper's pid."""
    spawner = (
        "import subprocess, sys\n"
        "sleeper = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'],"
        " start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
        "print(sleeper.pid)\n"
    )
    out = subprocess.run([sys.executable, "-c", spawner], stdout=subprocess.PIPE, check=True)
    return int(out.stdout)


def main() -> int:
    opts = options()
    folder = Path(opts["results"]) / opts["_id"]
    folder.mkdir(parents=True, exist_ok=True)
    launches = opts.get("launches", "none")
    if launches != "none":  # one line per start, so a test can count launches
        with open(launches, "a") as out:
            out.write(f"{os.getpid()}\n")
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
    if mode == "env":  # which variables it was given, as a custom field
        (folder / "env.json").write_text(json.dumps({"EnvNames": sorted(os.environ)}))
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
    if mode == "trap":  # saves a checkpoint on TERM and exits; its child dies of TERM
        checkpoint = Path(opts["checkpoint"])

        def save(signum, frame):
            checkpoint.write_text("saved")
            sys.exit(0)

        signal.signal(signal.SIGTERM, save)
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        write_pids(Path(opts["pids"]), [os.getpid(), child.pid])
        time.sleep(600)
        return 0
    if mode == "stubborn":  # ignores TERM, and so does its child (SIG_IGN is inherited)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        write_pids(Path(opts["pids"]), [os.getpid(), child.pid])
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
    if mode == "escape":
        # Leaves a grandchild in a session of its own (as daemons and some launchers do),
        # prints numbered lines and writes results on both sides of the file `until`.
        grandchild = escaped_grandchild()
        write_pids(Path(opts["pids"]), [os.getpid(), grandchild])
        lines = int(opts.get("lines", "20"))
        for i in range(lines // 2):
            print(f"line {i}", flush=True)
        (folder / "first.json").write_text(json.dumps({"Phase": "first"}))
        wait_for_file(Path(opts["until"]), float(opts.get("limit", "60")))
        for i in range(lines // 2, lines):
            print(f"line {i}", flush=True)
        (folder / "scores.json").write_text(json.dumps({"_scores": {"accuracy": 1.0}}))
        return 0
    if mode == "ticks":
        # Numbered lines at a steady pace; the second half waits for the file `until`.
        lines, every = int(opts.get("lines", "40")), float(opts.get("every", "0.02"))
        for i in range(lines):
            if i == lines // 2:
                wait_for_file(Path(opts["until"]), float(opts.get("limit", "60")))
            print(f"line {i}", flush=True)
            time.sleep(every)
        return 0
    if mode == "outage":
        # Results before and after the file `until` appears (the test cuts MongoDB then).
        (folder / "early.json").write_text(json.dumps({"Phase": "early"}))
        (folder / "early.txt").write_text("early 1\n")
        wait_for_file(Path(opts["until"]), float(opts.get("limit", "60")))
        (folder / "scores.json").write_text(json.dumps({"_scores": {"accuracy": 0.5}}))
        (folder / "late.bin").write_bytes(bytes(range(256)) * 64)
        (folder / "early.txt").write_text("early 1\nearly 2\n")
        time.sleep(float(opts.get("pause", "1.0")))
        (folder / "late.json").write_text(json.dumps({"Phase": "late", "Epochs": 3}))
        return 0
    print(f"unknown mode {mode}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
