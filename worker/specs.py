"""What a machine announces about itself: host, OS, CPUs, memory and GPUs.

:func:`read_specs` gathers the fields of FGLab's machine document (``hostname``,
``address``, ``os``, ``cpus``, ``mem``, ``gpus``) in the shapes the original's Node.js
``os`` module produced, plus ``gpu_count`` and per-GPU memory in ``gpu_details``.

GPUs come from NVML (the ``pynvml`` module of nvidia-ml-py), loaded lazily so that a
machine without NVIDIA drivers still imports this module. No NVML is not an error: the
machine announces no GPUs and says so in one info line. ``Settings.gpu_count`` replaces
the probe with that many simulated GPUs (tests, machines without NVML).
"""

from __future__ import annotations

import contextlib
import logging
import platform
import re
import socket
import sys
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

logger = logging.getLogger(__name__)

#: The name every simulated GPU gets (``gpu_count`` given).
SIMULATED_GPU_NAME = "Simulated GPU"

_CPUINFO = Path("/proc/cpuinfo")

#: ``platform.machine()`` values mapped to Node's ``os.arch()`` names.
_NODE_ARCH = {
    "x86_64": "x64",
    "amd64": "x64",
    "aarch64": "arm64",
    "arm64": "arm64",
    "i386": "ia32",
    "i486": "ia32",
    "i586": "ia32",
    "i686": "ia32",
    "x86": "ia32",
    "ppc64le": "ppc64",
    "ppc64": "ppc64",
}
#: ``platform.system()`` values Node's ``os.type()`` spells differently.
_NODE_TYPE = {"Windows": "Windows_NT"}
#: Interfaces that exist on the machine but are rarely the address others reach it by.
_VIRTUAL_PREFIXES = ("docker", "br-", "veth", "virbr", "lxc", "lxd", "cni", "flannel", "tun")


@dataclass(frozen=True)
class Gpu:
    """One GPU as NVML reports it; memory in bytes.

    ``memory_used`` counts every process on the GPU, the fleet's and others', so a
    scheduler can see memory taken by work outside the fleet.
    """

    index: int
    name: str
    memory_total: int
    memory_used: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "name": self.name,
            "memory_total": self.memory_total,
            "memory_used": self.memory_used,
        }


@dataclass(frozen=True)
class Specs:
    """A machine's specifications, as announced to FGLab."""

    hostname: str
    address: str
    #: ``{type, platform, arch, release}`` as Node's ``os`` module gives them.
    os: dict[str, str]
    #: One model string per logical CPU.
    cpus: tuple[str, ...]
    #: Total memory as FGLab showed it, e.g. ``"23.53GB"`` (GiB, two decimals).
    mem: str
    gpus: tuple[Gpu, ...]

    def to_dict(self) -> dict[str, Any]:
        """The machine document's fields; ``gpus`` lists model names, as in the original."""
        return {
            "hostname": self.hostname,
            "address": self.address,
            "os": dict(self.os),
            "cpus": list(self.cpus),
            "mem": self.mem,
            "gpus": [gpu.name for gpu in self.gpus],
            "gpu_count": len(self.gpus),
            "gpu_details": [gpu.to_dict() for gpu in self.gpus],
        }


def read_specs(machine_name: str, gpu_count: int | None = None, nvml: Any = None) -> Specs:
    """This machine's specifications, announced under ``machine_name``.

    ``gpu_count`` and ``nvml`` are passed to :func:`read_gpus`. Reads psutil,
    ``/proc/cpuinfo`` (where there is one) and NVML; raises nothing for a missing probe.
    """
    logical = psutil.cpu_count(logical=True) or 1
    return Specs(
        hostname=machine_name,
        address=primary_ipv4(psutil.net_if_addrs(), psutil.net_if_stats()),
        os=node_os(platform.system(), sys.platform, platform.machine(), platform.release()),
        cpus=cpu_models(_read_cpuinfo(), platform.processor(), logical),
        mem=format_mem(psutil.virtual_memory().total),
        gpus=read_gpus(gpu_count, nvml),
    )


def read_gpus(gpu_count: int | None = None, nvml: Any = None) -> tuple[Gpu, ...]:
    """The machine's GPUs, ordered by NVML index.

    With ``gpu_count`` given, that many simulated GPUs (no memory) and NVML is not asked.
    Otherwise NVML is asked through ``nvml`` (default: the ``pynvml`` module); when it
    cannot be loaded or fails, the result is empty and one info line is logged.
    Raises ``ValueError`` for a negative ``gpu_count``.
    """
    if gpu_count is not None:
        if gpu_count < 0:
            raise ValueError(f"gpu_count={gpu_count!r} is negative; use 0 or more")
        return tuple(Gpu(i, SIMULATED_GPU_NAME, 0, 0) for i in range(gpu_count))
    try:
        nvml = nvml if nvml is not None else _import_nvml()
        nvml.nvmlInit()
    except _nvml_errors(nvml, ImportError, OSError) as e:
        _log_no_nvml(e)
        return ()
    try:
        gpus = []
        for index in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            memory = nvml.nvmlDeviceGetMemoryInfo(handle)
            name = _text(nvml.nvmlDeviceGetName(handle))
            gpus.append(Gpu(index, name, int(memory.total), int(memory.used)))
        return tuple(gpus)
    except _nvml_errors(nvml, OSError) as e:
        _log_no_nvml(e)
        return ()
    finally:
        _shutdown(nvml)


def gpu_memory_used(index: int, nvml: Any = None) -> int | None:
    """Bytes in use on GPU ``index`` right now, by any process; ``None`` without NVML.

    Also ``None`` when NVML does not know the index. Logs at debug level only, since
    callers ask repeatedly.
    """
    try:
        nvml = nvml if nvml is not None else _import_nvml()
        nvml.nvmlInit()
    except _nvml_errors(nvml, ImportError, OSError) as e:
        logger.debug("NVML not available (%s); GPU %s memory unknown", e, index)
        return None
    try:
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
        return int(nvml.nvmlDeviceGetMemoryInfo(handle).used)
    except _nvml_errors(nvml, OSError) as e:
        logger.debug("NVML could not read GPU %s memory (%s)", index, e)
        return None
    finally:
        _shutdown(nvml)


def format_mem(total_bytes: int) -> str:
    """Total memory the way FGLab showed it: GiB with two decimals, e.g. ``"23.53GB"``."""
    return f"{total_bytes / 1024**3:.2f}GB"


def node_os(system: str, sys_platform: str, machine: str, release: str) -> dict[str, str]:
    """``{type, platform, arch, release}`` with the values Node's ``os`` module gives.

    ``system`` is ``platform.system()``, ``sys_platform`` is ``sys.platform``, ``machine``
    is ``platform.machine()`` and ``release`` the kernel release (``platform.release()``).
    """
    arch = machine.lower()
    return {
        "type": _NODE_TYPE.get(system, system),
        # Python spells e.g. "freebsd14" where Node says "freebsd"; both say "win32".
        "platform": sys_platform if sys_platform == "win32" else re.sub(r"\d+$", "", sys_platform),
        "arch": _NODE_ARCH.get(arch, "arm" if arch.startswith("arm") else arch),
        "release": release,
    }


def cpu_models(cpuinfo: str, processor: str, logical: int) -> tuple[str, ...]:
    """One model string per logical CPU.

    ``cpuinfo`` is the text of ``/proc/cpuinfo`` (empty elsewhere); its ``model name``
    lines are used as they are when there is one per CPU, otherwise the first model (or
    ``processor``, from ``platform.processor()``) is repeated ``logical`` times.
    """
    models = [
        value.strip()
        for key, _, value in (line.partition(":") for line in cpuinfo.splitlines())
        if key.strip() == "model name" and value.strip()
    ]
    if len(models) == logical:
        return tuple(models)
    model = models[0] if models else (processor.strip() or "Unknown CPU")
    return (model,) * max(logical, 1)


def primary_ipv4(addrs: Mapping[str, Sequence[Any]], stats: Mapping[str, Any] | None = None) -> str:
    """The machine's primary IPv4 address, ``"127.0.0.1"`` when it has no other.

    ``addrs`` and ``stats`` are ``psutil.net_if_addrs()`` and ``psutil.net_if_stats()``.
    Loopback and link-local addresses never count; interfaces that are up come before
    those that are down, real ones before container bridges; otherwise the order of
    ``addrs`` (the kernel's) decides.
    """
    stats = stats or {}
    candidates = []
    for order, (name, entries) in enumerate(addrs.items()):
        for address in _ipv4s(entries):
            if address.startswith(("127.", "169.254.")):
                continue
            down = name in stats and not getattr(stats[name], "isup", True)
            virtual = name.startswith(_VIRTUAL_PREFIXES)
            candidates.append((down, virtual, order, address))
    return min(candidates)[3] if candidates else "127.0.0.1"


def _ipv4s(entries: Iterable[Any]) -> list[str]:
    return [entry.address for entry in entries if entry.family == socket.AF_INET]


def _read_cpuinfo() -> str:
    try:
        return _CPUINFO.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _import_nvml() -> Any:
    # The deprecated "pynvml" distribution installs an import hook that warns on the
    # first "import pynvml", even though the module it finds is nvidia-ml-py's. The
    # warning is about packaging, not about this code; only it is silenced.
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="The pynvml package is deprecated", category=FutureWarning
        )
        import pynvml

    return pynvml


def _nvml_errors(nvml: Any, *also: type[BaseException]) -> tuple[type[BaseException], ...]:
    """``also`` plus ``nvml.NVMLError`` when the module has one (it may be ``None``)."""
    error = getattr(nvml, "NVMLError", None)
    if isinstance(error, type) and issubclass(error, BaseException):
        return (*also, error)
    return also


def _shutdown(nvml: Any) -> None:
    with contextlib.suppress(*_nvml_errors(nvml, OSError)):
        nvml.nvmlShutdown()


def _log_no_nvml(error: BaseException) -> None:
    logger.info("NVML not available (%s); this machine announces no GPUs", error)


def _text(value: str | bytes) -> str:
    # nvidia-ml-py before 11.515 returns bytes, later versions str.
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value
