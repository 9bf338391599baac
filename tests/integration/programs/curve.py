"""A training run in miniature for sweeps: a loss curve reported step by step.

Options (double-dash style): ``--final`` the loss it ends at, ``--steps`` how many steps,
``--delay`` seconds per step, ``--results`` the results root and ``--_id``. Each step
rewrites ``progress.json`` in ``<results>/<_id>/`` with ``{"_scores": {"loss": v},
"_step": s}``, the loss falling from ``final + 1`` towards ``final``. Optional: ``--flat
N`` reports the same loss (5.0) for every trial before step N, so a bad trial shows only
from step N; ``--stamps PATH`` appends ``step <n> <time>`` as each step is written and
``term <time>`` when SIGTERM comes (then it exits), for latency figures.
"""

import json
import os
import signal
import sys
import time
from pathlib import Path


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


def main() -> None:
    opts = options()
    folder = Path(opts["results"]) / opts["_id"]
    folder.mkdir(parents=True, exist_ok=True)
    final, steps, delay = float(opts["final"]), int(opts["steps"]), float(opts["delay"])
    flat = int(opts.get("flat", "0"))
    stamps = opts.get("stamps", "none")

    def stamp(line: str) -> None:
        if stamps != "none":
            with open(stamps, "a") as out:
                out.write(f"{opts['_id']} {line} {time.time():.6f}\n")

    def stopped(signum: int, frame: object) -> None:
        stamp("term")
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, stopped)
    for step in range(1, steps + 1):
        loss = 5.0 if step < flat else final + 1.0 / step
        tmp = folder / "progress.tmp"
        tmp.write_text(json.dumps({"_scores": {"loss": loss}, "_step": step}))
        os.replace(tmp, folder / "progress.json")
        stamp(f"step {step}")
        time.sleep(delay)


if __name__ == "__main__":
    main()
