"""The Branin function of its options, as a sweep's objective (global minimum 0.397887).

Options (double-dash style): ``--x`` in [-5, 10], ``--y`` in [0, 15], ``--results`` the
results root and ``--_id``. Writes ``{"_scores": {"branin": f(x, y)}}`` to
``<results>/<_id>/scores.json`` and exits.
"""

import json
import math
import sys
from pathlib import Path


def branin(x: float, y: float) -> float:
    b, c, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    return (y - b * x**2 + c * x - 6) ** 2 + 10 * (1 - t) * math.cos(x) + 10


def main() -> None:
    opts: dict[str, str] = {}
    args = sys.argv[1:]
    for i, arg in enumerate(args):
        if arg.startswith("--") and "=" in arg:
            name, value = arg[2:].split("=", 1)
            opts[name] = value
        elif arg.startswith("--") and i + 1 < len(args):
            opts[arg[2:]] = args[i + 1]
    folder = Path(opts["results"]) / opts["_id"]
    folder.mkdir(parents=True, exist_ok=True)
    value = branin(float(opts["x"]), float(opts["y"]))
    (folder / "scores.json").write_text(json.dumps({"_scores": {"branin": value}}))


if __name__ == "__main__":
    main()
