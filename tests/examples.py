"""Example data that unit and integration tests share."""

from __future__ import annotations

from typing import Any

#: An example project schema in the style of the original FGLab's: one option of every type.
#: (The API tests upload the README's own, with other defaults: ``api.helpers.EXAMPLE_SCHEMA``.)
EXAMPLE_SCHEMA: dict[str, dict[str, Any]] = {
    "seed": {"type": "int", "default": 123},
    "model": {"type": "string", "default": "cnn"},
    "batchSize": {"type": "int", "default": 32},
    "optimiser": {"type": "enum", "default": "adam", "values": ["sgd", "adam", "rmsprop"]},
    "learningRate": {"type": "float", "default": 0.001},
    "L2": {"type": "bool", "default": False},
}

#: The seed's example "Multiple XY Line Chart" (FGMachine README).
SEED_CHART: dict[str, Any] = {
    "columnNames": ["train", "val", "x1", "x2"],
    "data": {
        "xs": {"train": "x1", "val": "x2"},
        "columns": [
            [1.0, 0.8, 0.6, 0.4, 0.3, 0.2, 0.1, 0.1, 0.1, 0.1, 0.0],
            [1.0, 0.9, 0.6, 0.4, 0.3],
            [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
            [2, 6, 8, 9, 11],
        ],
    },
    "axis": {"x": {"label": {"text": "Iterations"}}, "y": {"label": {"text": "Losses"}}},
}
