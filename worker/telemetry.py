"""What the heartbeat measures: each GPU through NVML, each run's process tree through psutil.

A GPU report carries, per GPU, model, memory used and total (bytes), utilisation (%),
temperature (°C), power (W) and the processes using it (pid, GPU memory). A GPU NVML
cannot read (an error, or gone from the count) is *down*; so is one the fleet must leave
alone (`FGLAB_GPUS_EXCLUDE`, or outside the worker's own ``CUDA_VISIBLE_DEVICES``). FGLab
puts no new work on a down GPU, and takes it back the beat it reads again.

A metric the GPU does not support (temperature, power on some boards) is None, not an
error. No NVML at all: no GPUs, no report, one debug line a beat (the info line is
:mod:`worker.specs`' at registration).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import psutil

from config import Settings
from worker.specs import _import_nvml, _nvml_errors, _shutdown, _text

logger = logging.getLogger(__name__)

#: NVML's constant for the GPU die's temperature sensor.
_TEMPERATURE_GPU = 0


@dataclass(frozen=True)
class GpuReport:
    """One look at the machine's GPUs: per-GPU telemetry and the indices that take no work."""

    gpus: tuple[dict[str, Any], ...]
    down: tuple[int, ...]

    def processes(self) -> dict[int, dict[int, int]]:
        """GPU index -> {pid: GPU memory in bytes} of the processes using it."""
        return {
            gpu["index"]: {p["pid"]: p["memory"] or 0 for p in gpu.get("processes") or []}
            for gpu in self.gpus
        }

    def gpu(self, index: int | None) -> dict[str, Any] | None:
        return next((g for g in self.gpus if g["index"] == index), None)


def excluded_reason(index: int, uuid: str | None, settings: Settings) -> str | None:
    """Why the fleet must leave GPU `index` alone, or None when it may use it."""
    names = {str(index)} | ({uuid} if uuid else set())
    if settings.gpus_exclude:
        wanted_out = {part.strip() for part in settings.gpus_exclude.split(",") if part.strip()}
        if names & wanted_out or (uuid and any(uuid.startswith(w) for w in wanted_out)):
            return "excluded by FGLAB_GPUS_EXCLUDE"
    visible = settings.cuda_visible_devices
    if visible is not None:
        shown = [part.strip() for part in visible.split(",") if part.strip()]
        # CUDA accepts UUID prefixes ("GPU-8f3a"), so a prefix names the GPU too.
        if not (names & set(shown) or (uuid and any(uuid.startswith(s) for s in shown))):
            return "not in this worker's CUDA_VISIBLE_DEVICES"
    return None


def read_gpu_report(count: int, settings: Settings, nvml: Any = None) -> GpuReport:
    """Read each of the `count` GPUs the machine registered; see the module for "down".

    Never raises for NVML: an unloadable NVML gives an empty report (every GPU down).
    """
    if not count:
        return GpuReport((), ())
    try:
        nvml = nvml if nvml is not None else _import_nvml()
        nvml.nvmlInit()
    except _nvml_errors(nvml, ImportError, OSError) as e:
        logger.debug("NVML not available (%s): no GPU telemetry", e)
        return GpuReport((), tuple(range(count)))
    try:
        gpus = [_read_gpu(nvml, index, settings) for index in range(count)]
    finally:
        _shutdown(nvml)
    down = tuple(g["index"] for g in gpus if g.get("down"))
    return GpuReport(tuple(gpus), down)


def _read_gpu(nvml: Any, index: int, settings: Settings) -> dict[str, Any]:
    errors = _nvml_errors(nvml, OSError)
    try:
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
        memory = nvml.nvmlDeviceGetMemoryInfo(handle)
        name = _text(nvml.nvmlDeviceGetName(handle))
    except errors as e:
        return {"index": index, "down": f"NVML cannot read it: {e}"}
    uuid = _optional(nvml, errors, lambda: _text(nvml.nvmlDeviceGetUUID(handle)))
    utilization = _optional(nvml, errors, lambda: nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
    milliwatts = _optional(nvml, errors, lambda: nvml.nvmlDeviceGetPowerUsage(handle))
    gpu: dict[str, Any] = {
        "index": index,
        "name": name,
        "uuid": uuid,
        "memory_total": int(memory.total),
        "memory_used": int(memory.used),
        "utilization": None if utilization is None else int(utilization),
        "temperature": _optional(
            nvml, errors, lambda: int(nvml.nvmlDeviceGetTemperature(handle, _TEMPERATURE_GPU))
        ),
        "power": None if milliwatts is None else round(milliwatts / 1000, 1),
        "processes": _processes(nvml, errors, handle),
    }
    reason = excluded_reason(index, uuid, settings)
    if reason:
        gpu["down"] = reason
    return gpu


def _optional(nvml: Any, errors: tuple[type[BaseException], ...], read: Any) -> Any:
    try:
        return read()
    except errors:
        return None


def _processes(nvml: Any, errors: tuple[type[BaseException], ...], handle: Any) -> list[dict]:
    found: dict[int, int | None] = {}
    for name in ("nvmlDeviceGetComputeRunningProcesses", "nvmlDeviceGetGraphicsRunningProcesses"):
        reader = getattr(nvml, name, None)
        for process in _optional(nvml, errors, lambda r=reader: r(handle) if r else []) or []:
            memory = getattr(process, "usedGpuMemory", None)
            found[int(process.pid)] = None if memory is None else int(memory)
    return [{"pid": pid, "memory": memory} for pid, memory in sorted(found.items())]


# One run's process tree -------------------------------------------------------------


def process_tree(pid: int) -> list[psutil.Process]:
    """The process `pid` and its descendants; empty when it is gone."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def tree_usage(processes: Iterable[psutil.Process]) -> tuple[float, int, set[int]]:
    """(CPU seconds used so far, resident bytes now, pids) of the processes still alive."""
    cpu_seconds, rss, pids = 0.0, 0, set()
    for process in processes:
        try:
            times = process.cpu_times()
            rss += process.memory_info().rss
            cpu_seconds += times.user + times.system
            pids.add(process.pid)
        except psutil.Error:
            continue
    return cpu_seconds, rss, pids


@dataclass
class RunStats:
    """The resources of one run so far: CPU (% of one core) and resident memory of its
    process tree (peak, mean, last), and on its GPU the memory its processes held and the
    GPU's utilisation (peak, last)."""

    gpu: int | None = None
    samples: int = 0
    cpu_seconds: float | None = None
    at: float | None = None
    totals: dict[str, float] = field(default_factory=dict)
    peaks: dict[str, float] = field(default_factory=dict)
    lasts: dict[str, float | None] = field(default_factory=dict)

    def add(
        self,
        at: float,
        cpu_seconds: float,
        rss: int,
        gpu_memory: int | None,
        gpu_utilization: int | None,
    ) -> list[Any]:
        """Fold one sample in; returns the chart point ``[t, cpu %, rss, gpu mem, gpu %]``."""
        cpu = 0.0
        if self.cpu_seconds is not None and self.at is not None and at > self.at:
            # A child that exited takes its CPU seconds with it: never below zero.
            cpu = max(0.0, (cpu_seconds - self.cpu_seconds) / (at - self.at) * 100)
        self.cpu_seconds, self.at = cpu_seconds, at
        self.samples += 1
        values = {"cpu": round(cpu, 1), "rss": rss, "gpu_memory": gpu_memory,
                  "gpu_utilization": gpu_utilization}  # fmt: skip
        for name, value in values.items():
            self.lasts[name] = value
            if value is None:
                continue
            self.totals[name] = self.totals.get(name, 0.0) + value
            self.peaks[name] = max(self.peaks.get(name, value), value)
        return [round(at, 1), values["cpu"], rss, gpu_memory, gpu_utilization]

    def summary(self) -> dict[str, Any]:
        """The experiment's ``_resources``: per metric peak, mean and last; the GPU."""
        summary: dict[str, Any] = {"gpu": self.gpu, "samples": self.samples}
        for name in ("cpu", "rss", "gpu_memory", "gpu_utilization"):
            if name not in self.peaks:
                continue
            mean = self.totals[name] / self.samples
            summary[name] = {
                "peak": self.peaks[name],
                "mean": round(mean, 1),
                "last": self.lasts[name],
            }
        return summary


def gpu_memory_of(pids: set[int], processes: Mapping[int, int]) -> int:
    """GPU memory the processes `pids` hold on one GPU (`processes`: pid -> bytes)."""
    return sum(memory for pid, memory in processes.items() if pid in pids)


def history_point(at: float, gpus: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One point of a machine's GPU history: per GPU memory used and utilisation."""
    return {
        "t": round(at, 1),
        "gpus": [
            {
                "index": g["index"],
                "memory_used": g.get("memory_used"),
                "utilization": g.get("utilization"),
            }
            for g in gpus
        ],
    }
