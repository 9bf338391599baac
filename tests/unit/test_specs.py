"""Machine specs: NVML through a fake module, formatting, and the machine document shape."""

from __future__ import annotations

import logging
import re
import socket
from types import SimpleNamespace

import pytest

from worker import specs
from worker.specs import (
    SIMULATED_GPU_NAME,
    Gpu,
    Specs,
    cpu_models,
    format_mem,
    gpu_memory_used,
    node_os,
    primary_ipv4,
    read_gpus,
    read_specs,
)

GIB = 1024**3


class FakeNVMLError(Exception):
    pass


class FakeNVML:
    """Just enough of pynvml: two GPUs, one name as bytes (old bindings), one as str."""

    NVMLError = FakeNVMLError

    def __init__(self, *, fail_init: bool = False, fail_on: str | None = None) -> None:
        self.fail_init = fail_init
        self.fail_on = fail_on
        self.devices = [
            (b"Tesla V100-SXM2-16GB", SimpleNamespace(total=16 * GIB, used=GIB, free=15 * GIB)),
            ("NVIDIA A100-SXM4-40GB", SimpleNamespace(total=40 * GIB, used=0, free=40 * GIB)),
        ]
        self.calls: list[str] = []

    def _call(self, name: str) -> None:
        self.calls.append(name)
        if self.fail_on == name:
            raise FakeNVMLError(f"{name} failed")

    def nvmlInit(self) -> None:
        self._call("nvmlInit")
        if self.fail_init:
            raise FakeNVMLError("NVML Shared Library Not Found")

    def nvmlShutdown(self) -> None:
        self._call("nvmlShutdown")

    def nvmlDeviceGetCount(self) -> int:
        self._call("nvmlDeviceGetCount")
        return len(self.devices)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        self._call("nvmlDeviceGetHandleByIndex")
        if not 0 <= index < len(self.devices):
            raise FakeNVMLError("Invalid Argument")
        return index

    def nvmlDeviceGetName(self, handle: int) -> str | bytes:
        self._call("nvmlDeviceGetName")
        return self.devices[handle][0]

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> SimpleNamespace:
        self._call("nvmlDeviceGetMemoryInfo")
        return self.devices[handle][1]


@pytest.fixture
def fake_gpus() -> FakeNVML:
    return FakeNVML()


def _nvml_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "worker.specs"]


def test_read_gpus_from_nvml(fake_gpus: FakeNVML) -> None:
    assert read_gpus(nvml=fake_gpus) == (
        Gpu(0, "Tesla V100-SXM2-16GB", 16 * GIB, GIB),
        Gpu(1, "NVIDIA A100-SXM4-40GB", 40 * GIB, 0),
    )
    assert fake_gpus.calls[0] == "nvmlInit"
    assert fake_gpus.calls[-1] == "nvmlShutdown"


def test_nvml_failing_at_init_means_no_gpus_and_one_info_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    nvml = FakeNVML(fail_init=True)
    with caplog.at_level(logging.DEBUG, logger="worker.specs"):
        assert read_gpus(nvml=nvml) == ()
    records = _nvml_records(caplog)
    assert len(records) == 1
    assert records[0].levelno == logging.INFO
    assert records[0].getMessage() == (
        "NVML not available (NVML Shared Library Not Found); this machine announces no GPUs"
    )
    assert "nvmlShutdown" not in nvml.calls


def test_nvml_failing_while_enumerating_means_no_gpus_and_still_shuts_down(
    caplog: pytest.LogCaptureFixture,
) -> None:
    nvml = FakeNVML(fail_on="nvmlDeviceGetCount")
    with caplog.at_level(logging.INFO, logger="worker.specs"):
        assert read_gpus(nvml=nvml) == ()
    assert len(_nvml_records(caplog)) == 1
    assert nvml.calls[-1] == "nvmlShutdown"


def test_failing_shutdown_keeps_the_gpus() -> None:
    nvml = FakeNVML(fail_on="nvmlShutdown")
    assert len(read_gpus(nvml=nvml)) == 2


def test_nvml_that_cannot_be_imported_means_no_gpus(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def missing() -> None:
        raise ImportError("No module named 'pynvml'")

    monkeypatch.setattr(specs, "_import_nvml", missing)
    with caplog.at_level(logging.INFO, logger="worker.specs"):
        assert read_gpus() == ()
        assert gpu_memory_used(0) is None
    assert [r.levelno for r in _nvml_records(caplog)] == [logging.INFO]


def test_nvml_library_missing_as_oserror_means_no_gpus() -> None:
    nvml = SimpleNamespace(nvmlInit=lambda: (_ for _ in ()).throw(OSError("libnvidia-ml.so.1")))
    assert read_gpus(nvml=nvml) == ()


def test_real_pynvml_imports_without_warnings() -> None:
    # filterwarnings = error: the deprecated "pynvml" distribution's FutureWarning would fail.
    module = specs._import_nvml()
    assert callable(module.nvmlInit)


@pytest.mark.parametrize("count", [0, 1, 3])
def test_gpu_count_overrides_nvml(count: int) -> None:
    nvml = FakeNVML()
    gpus = read_gpus(count, nvml=nvml)
    assert gpus == tuple(Gpu(i, SIMULATED_GPU_NAME, 0, 0) for i in range(count))
    assert nvml.calls == []


def test_negative_gpu_count_is_refused() -> None:
    with pytest.raises(ValueError, match=r"gpu_count=-1 is negative; use 0 or more"):
        read_gpus(-1)


def test_gpu_memory_used(fake_gpus: FakeNVML) -> None:
    assert gpu_memory_used(0, nvml=fake_gpus) == GIB
    assert gpu_memory_used(1, nvml=fake_gpus) == 0
    assert gpu_memory_used(5, nvml=fake_gpus) is None
    assert gpu_memory_used(0, nvml=FakeNVML(fail_init=True)) is None
    assert fake_gpus.calls.count("nvmlInit") == fake_gpus.calls.count("nvmlShutdown") == 3


@pytest.mark.parametrize(
    ("total", "expected"),
    [(25_265_954_816, "23.53GB"), (0, "0.00GB"), (16 * GIB, "16.00GB"), (GIB // 2, "0.50GB")],
)
def test_format_mem(total: int, expected: str) -> None:
    assert format_mem(total) == expected


@pytest.mark.parametrize(
    ("system", "sys_platform", "machine", "expected_type", "expected_platform", "expected_arch"),
    [
        ("Linux", "linux", "x86_64", "Linux", "linux", "x64"),
        ("Linux", "linux", "aarch64", "Linux", "linux", "arm64"),
        ("Darwin", "darwin", "arm64", "Darwin", "darwin", "arm64"),
        ("Windows", "win32", "AMD64", "Windows_NT", "win32", "x64"),
        ("FreeBSD", "freebsd14", "amd64", "FreeBSD", "freebsd", "x64"),
        ("Linux", "linux", "armv7l", "Linux", "linux", "arm"),
        ("Linux", "linux", "i686", "Linux", "linux", "ia32"),
        ("Linux", "linux", "s390x", "Linux", "linux", "s390x"),
    ],
)
def test_node_os(
    system: str,
    sys_platform: str,
    machine: str,
    expected_type: str,
    expected_platform: str,
    expected_arch: str,
) -> None:
    assert node_os(system, sys_platform, machine, "6.8.0-45-generic") == {
        "type": expected_type,
        "platform": expected_platform,
        "arch": expected_arch,
        "release": "6.8.0-45-generic",
    }


CPUINFO = """processor\t: 0
model name\t: Intel(R) Xeon(R) CPU E5-2680 v4 @ 2.40GHz
flags\t\t: fpu vme

processor\t: 1
model name\t: Intel(R) Xeon(R) CPU E5-2680 v4 @ 2.40GHz
flags\t\t: fpu vme
"""
XEON = "Intel(R) Xeon(R) CPU E5-2680 v4 @ 2.40GHz"


def test_cpu_models_one_per_logical_cpu() -> None:
    assert cpu_models(CPUINFO, "x86_64", 2) == (XEON, XEON)
    # Fewer lines than logical CPUs (e.g. a container's view): the first model repeats.
    assert cpu_models(CPUINFO, "x86_64", 4) == (XEON,) * 4


def test_cpu_models_without_cpuinfo_use_the_processor() -> None:
    assert cpu_models("", "arm", 3) == ("arm",) * 3
    assert cpu_models("processor\t: 0\nBogoMIPS\t: 50.00\n", "", 1) == ("Unknown CPU",)


def _addr(family: int, address: str) -> SimpleNamespace:
    return SimpleNamespace(family=family, address=address)


def test_primary_ipv4_skips_loopback_ipv6_link_local_and_down_interfaces() -> None:
    addrs = {
        "lo": [_addr(socket.AF_INET, "127.0.0.1")],
        "eth9": [_addr(socket.AF_INET, "10.9.9.9")],
        "docker0": [_addr(socket.AF_INET, "172.17.0.1")],
        "eth0": [
            _addr(socket.AF_INET6, "fe80::1"),
            _addr(socket.AF_INET, "169.254.3.4"),
            _addr(socket.AF_INET, "192.168.1.20"),
        ],
    }
    stats = {"eth9": SimpleNamespace(isup=False), "eth0": SimpleNamespace(isup=True)}
    assert primary_ipv4(addrs, stats) == "192.168.1.20"
    assert primary_ipv4({"docker0": addrs["docker0"], "eth9": addrs["eth9"]}) == "10.9.9.9"


def test_primary_ipv4_falls_back_to_loopback() -> None:
    assert primary_ipv4({"lo": [_addr(socket.AF_INET, "127.0.0.1")]}) == "127.0.0.1"
    assert primary_ipv4({}) == "127.0.0.1"


def test_to_dict_matches_the_original_machine_document() -> None:
    machine = Specs(
        hostname="gpu-box",
        address="10.0.0.5",
        os={"type": "Linux", "platform": "linux", "arch": "x64", "release": "6.8.0"},
        cpus=(XEON, XEON),
        mem="23.53GB",
        gpus=(Gpu(0, "Tesla V100-SXM2-16GB", 16 * GIB, GIB),),
    )
    assert machine.to_dict() == {
        "hostname": "gpu-box",
        "address": "10.0.0.5",
        "os": {"type": "Linux", "platform": "linux", "arch": "x64", "release": "6.8.0"},
        "cpus": [XEON, XEON],
        "mem": "23.53GB",
        "gpus": ["Tesla V100-SXM2-16GB"],
        "gpu_count": 1,
        "gpu_details": [
            {
                "index": 0,
                "name": "Tesla V100-SXM2-16GB",
                "memory_total": 16 * GIB,
                "memory_used": GIB,
            },
        ],
    }


def test_read_specs_on_this_machine(fake_gpus: FakeNVML) -> None:
    machine = read_specs("test-machine", nvml=fake_gpus)
    document = machine.to_dict()
    assert document["hostname"] == "test-machine"
    assert socket.inet_aton(document["address"])
    assert set(document["os"]) == {"type", "platform", "arch", "release"}
    assert all(isinstance(value, str) and value for value in document["os"].values())
    assert len(document["cpus"]) >= 1
    assert all(isinstance(model, str) and model for model in document["cpus"])
    assert re.fullmatch(r"\d+\.\d\dGB", document["mem"])
    assert document["gpus"] == ["Tesla V100-SXM2-16GB", "NVIDIA A100-SXM4-40GB"]
    assert document["gpu_count"] == 2


def test_read_specs_with_gpu_count(fake_gpus: FakeNVML) -> None:
    machine = read_specs("test-machine", gpu_count=2, nvml=fake_gpus)
    assert [gpu.name for gpu in machine.gpus] == [SIMULATED_GPU_NAME] * 2
    assert fake_gpus.calls == []
