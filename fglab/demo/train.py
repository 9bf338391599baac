"""FGLab's demo program: fits a line by gradient descent and reports like a real experiment.

FGMachine runs it as ``python train.py --_id=<experiment id> --learningRate=0.1
--epochs=20 --optimiser=adam --seed=1`` in the machine's working folder. It reports through
:class:`fglab.report.Reporter` into its results folder (the worker's, or
``--results=<folder>/<_id>/``), which the machine uploads while it runs:

- each epoch, ``_scores`` (train and validation loss) at ``_step`` <epoch>, and
  ``_charts``, both losses per epoch,
- at the end, ``_notes``, a custom field ``model`` and ``loss.png``, the loss curves as a
  small image.

Only the standard library is used (``fglab/report.py`` is one file of it), so it runs
under any Python 3.
"""

import itertools
import math
import random
import struct
import sys
import tempfile
import time
import zlib
from pathlib import Path

try:
    from fglab.report import Reporter
except ImportError:  # run by a Python without FGLab installed: the helper is one file
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from report import Reporter  # type: ignore[no-redef]

SECONDS = 3.0  # at most this long in total, however many epochs are asked for


def parse_options(argv):
    """``--name=value`` items (FGMachine's double-dash style) into a dict of strings."""
    options = {}
    for arg in argv:
        if not arg.startswith("--") or "=" not in arg:
            raise SystemExit(f"train.py: argument {arg!r} is not --name=value")
        name, value = arg[2:].split("=", 1)
        options[name] = value
    if "_id" not in options:
        raise SystemExit("train.py: --_id=<experiment id> is missing (FGMachine passes it)")
    return options


def make_data(rng, count):
    """Points of y = 3x - 1 plus noise, x in [-1, 1]."""
    xs = [rng.uniform(-1, 1) for _ in range(count)]
    return [(x, 3 * x - 1 + rng.gauss(0, 0.3)) for x in xs]


def mse(params, data):
    w, b = params
    return sum((w * x + b - y) ** 2 for x, y in data) / len(data)


def gradient(params, batch):
    w, b = params
    gw = gb = 0.0
    for x, y in batch:
        error = w * x + b - y
        gw += 2 * error * x
        gb += 2 * error
    return [gw / len(batch), gb / len(batch)]


class Optimiser:
    def __init__(self, kind, rate):
        self.kind, self.rate, self.step = kind, rate, 0
        self.m, self.v = [0.0, 0.0], [0.0, 0.0]

    def update(self, params, grad):
        if self.kind == "sgd":
            return [p - self.rate * g for p, g in zip(params, grad, strict=True)]
        self.step += 1
        beta1, beta2, eps = 0.9, 0.999, 1e-8
        new = []
        for i, (p, g) in enumerate(zip(params, grad, strict=True)):
            self.m[i] = beta1 * self.m[i] + (1 - beta1) * g
            self.v[i] = beta2 * self.v[i] + (1 - beta2) * g * g
            m_hat = self.m[i] / (1 - beta1**self.step)
            v_hat = self.v[i] / (1 - beta2**self.step)
            new.append(p - self.rate * m_hat / (math.sqrt(v_hat) + eps))
        return new


def png(width, height, pixels):
    """Encode rows of (r, g, b) tuples as a PNG (8-bit RGB, no filtering)."""

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    raw = b"".join(b"\x00" + bytes(c for rgb in row for c in rgb) for row in pixels)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


def plot(series, width=200, height=120):
    """A line plot of each (values, colour) in `series` on shared axes, as PNG bytes."""
    pixels = [[(255, 255, 255)] * width for _ in range(height)]
    left, right, top, bottom = 12, width - 6, 6, height - 12
    for x in range(left, right + 1):
        pixels[bottom][x] = (120, 120, 120)
    for y in range(top, bottom + 1):
        pixels[y][left] = (120, 120, 120)
    peak = max(max(values) for values, _ in series) or 1.0
    for values, colour in series:
        points = [
            (
                left + round(i * (right - left) / max(1, len(values) - 1)),
                bottom - round(v / peak * (bottom - top)),
            )
            for i, v in enumerate(values)
        ]
        for (x0, y0), (x1, y1) in itertools.pairwise(points):
            steps = max(abs(x1 - x0), abs(y1 - y0), 1)
            for s in range(steps + 1):
                x = x0 + round(s * (x1 - x0) / steps)
                y = y0 + round(s * (y1 - y0) / steps)
                for dy in (0, 1):  # two pixels thick
                    if top <= y + dy <= bottom:
                        pixels[y + dy][x] = colour
    return png(width, height, pixels)


def main():
    options = parse_options(sys.argv[1:])
    try:
        rate = float(options.get("learningRate", "0.1"))
        epochs = int(options.get("epochs", "20"))
        seed = int(options.get("seed", "1"))
    except ValueError as e:
        raise SystemExit(f"train.py: {e}") from None
    kind = options.get("optimiser", "adam")
    if kind not in ("sgd", "adam") or epochs < 1:
        raise SystemExit(f"train.py: optimiser {kind!r} / epochs {epochs} not supported")
    given = options.get("results")
    reporter = Reporter(Path(given) / options["_id"] if given else None)

    rng = random.Random(seed)
    train_data, val_data = make_data(rng, 200), make_data(rng, 50)
    params = [rng.gauss(0, 1), rng.gauss(0, 1)]
    optimiser = Optimiser(kind, rate)
    pause = min(0.1, SECONDS / epochs)
    train_losses, val_losses = [], []
    print(f"training y = w*x + b with {kind}, learning rate {rate}, seed {seed}", flush=True)
    for epoch in range(1, epochs + 1):
        rng.shuffle(train_data)
        for start in range(0, len(train_data), 20):
            batch = train_data[start : start + 20]
            params = optimiser.update(params, gradient(params, batch))
        train_losses.append(round(mse(params, train_data), 6))
        val_losses.append(round(mse(params, val_data), 6))
        print(
            f"epoch {epoch}/{epochs}: train loss {train_losses[-1]:.4f}, "
            f"validation loss {val_losses[-1]:.4f}",
            flush=True,
        )
        reporter.report(step=epoch, trainLoss=train_losses[-1], validationLoss=val_losses[-1])
        reporter.chart(
            "loss",
            list(range(1, epoch + 1)),
            train=train_losses,
            validation=val_losses,
            x_label="epoch",
            y_label="loss (MSE)",
        )
        time.sleep(pause)

    best = min(range(epochs), key=val_losses.__getitem__)
    with tempfile.TemporaryDirectory() as scratch:
        image = Path(scratch, "loss.png")
        image.write_bytes(plot([(train_losses, (31, 119, 180)), (val_losses, (255, 127, 14))]))
        reporter.save(image)
    reporter.set(model={"w": round(params[0], 4), "b": round(params[1], 4), "target": "3x - 1"})
    reporter.note(f"Demo run: best validation loss {val_losses[best]:.4f} at epoch {best + 1}")
    print(f"done: w={params[0]:.3f} b={params[1]:.3f} (target 3, -1)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
