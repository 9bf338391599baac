"""GPU and run telemetry as the pages show it: C3 chart configs from the kept points.

The machines write the points (`worker.telemetry`); these pure functions shape them for
C3 (vendored), so a page needs no second request to draw them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

MIB = 2**20


def _timeseries(columns: list[list[Any]], y_label: str) -> dict[str, Any]:
    return {
        "data": {"x": "time", "columns": columns},
        "axis": {
            "x": {"type": "timeseries", "tick": {"format": "%H:%M", "count": 6}},
            "y": {"label": y_label, "min": 0, "padding": {"bottom": 0}},
        },
        "point": {"show": False},
        "size": {"height": 220},
    }


def gpu_history_charts(samples: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Two charts of a machine's last hour: each GPU's memory used (MiB) and utilisation (%)."""
    if not samples:
        return []
    times = ["time", *(int(float(s.get("t") or 0) * 1000) for s in samples)]
    indices = sorted({g["index"] for s in samples for g in s.get("gpus") or []})
    memory: list[list[Any]] = [times]
    utilization: list[list[Any]] = [times]
    for index in indices:
        by_sample = [{g["index"]: g for g in s.get("gpus") or []}.get(index, {}) for s in samples]
        memory.append(
            [f"GPU {index} memory (MiB)"]
            + [
                None if g.get("memory_used") is None else round(g["memory_used"] / MIB)
                for g in by_sample
            ]
        )
        utilization.append(
            [f"GPU {index} utilisation (%)"] + [g.get("utilization") for g in by_sample]
        )
    return [_timeseries(memory, "MiB"), _timeseries(utilization, "%")]


def run_charts(points: Sequence[Sequence[Any]]) -> list[dict[str, Any]]:
    """Charts of a run's ``_resource_samples``: CPU (%) and memory (MiB: resident, GPU)."""
    rows = [p for p in points if isinstance(p, list | tuple) and len(p) >= 5]
    if not rows:
        return []
    times = ["time", *(int(float(p[0]) * 1000) for p in rows)]
    cpu = ["CPU (% of one core)", *(p[1] for p in rows)]
    rss = ["resident memory (MiB)", *(None if p[2] is None else round(p[2] / MIB) for p in rows)]
    charts = [_timeseries([times, cpu], "%")]
    memory: list[list[Any]] = [times, rss]
    if any(p[3] is not None for p in rows):
        memory.append(
            ["GPU memory (MiB)", *(None if p[3] is None else round(p[3] / MIB) for p in rows)]
        )
        charts.append(_timeseries([times, ["GPU utilisation (%)", *(p[4] for p in rows)]], "%"))
    charts.insert(1, _timeseries(memory, "MiB"))
    return charts
