"""One prepared check on a machine with a real NVIDIA GPU: the fleet end to end.

Starts Redis, the MongoDB wire server (embedded, in memory), FGLab (``fglab web``), the
scheduler with beat and one machine worker, then submits 4 experiments of a project with
``gpu_capacity`` 0.5 on GPU 0 (so 2 run at once). Each program allocates GPU memory
through the CUDA driver (``libcuda``, no framework needed), holds it a few heartbeats and
writes what ``CUDA_VISIBLE_DEVICES`` it saw. Checks, each printed PASS or FAIL:

- pynvml reports the real GPU, and the machine record carries that model;
- at most 2 ran at once, and 2 did overlap;
- each program saw ``CUDA_VISIBLE_DEVICES`` equal to the GPU it was given;
- the telemetry shows the programs' GPU memory (on the experiment and the machine).

Run: ``.venv/bin/python -m bench.gpu_check`` (exit 0: all passed; 1: a check failed;
2: no GPU or no CUDA driver here, said in one line). Everything it starts is stopped.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

#: GPU memory each program holds, and for how long (seconds).
HOLD_BYTES = 512 * 2**20
HOLD_SECONDS = 12
EXPERIMENTS = 4
MACHINE = "gpu-check"

PROGRAM = f"""
import ctypes, json, os, sys, time
opts = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("--") and "=" in a)
folder = os.path.join(opts["results"], opts["_id"])
os.makedirs(folder, exist_ok=True)
seen = os.environ.get("CUDA_VISIBLE_DEVICES")
cuda = ctypes.CDLL("libcuda.so.1")
device, context, pointer = ctypes.c_int(), ctypes.c_void_p(), ctypes.c_uint64()
for call, args in (("cuInit", (0,)), ("cuDeviceGet", (ctypes.byref(device), 0)),
                   ("cuCtxCreate_v2", (ctypes.byref(context), 0, device)),
                   ("cuMemAlloc_v2", (ctypes.byref(pointer), ctypes.c_size_t({HOLD_BYTES}))),
                   ("cuMemsetD8_v2", (pointer, 1, ctypes.c_size_t({HOLD_BYTES})))):
    code = getattr(cuda, call)(*args)
    if code:
        sys.exit(f"{{call}} failed with CUDA error {{code}} (CUDA_VISIBLE_DEVICES={{seen!r}})")
with open(os.path.join(folder, "seen.json"), "w") as out:
    json.dump({{"cuda_visible_devices": seen}}, out)
time.sleep({HOLD_SECONDS})
"""


class NoGpu(RuntimeError):
    """This machine cannot run the check; the message says why."""


def real_gpu() -> str:
    """GPU 0's model as pynvml reports it; NoGpu when there is no NVIDIA GPU or driver."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception as e:  # the module missing, or NVML's library: both mean no GPU here
        raise NoGpu(f"NVML is not available ({e})") from None
    try:
        if pynvml.nvmlDeviceGetCount() < 1:
            raise NoGpu("NVML finds no GPU")
        name = pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByIndex(0))
        name = name.decode() if isinstance(name, bytes) else name
    finally:
        pynvml.nvmlShutdown()
    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError as e:
        raise NoGpu(f"NVML sees {name} but the CUDA driver cannot be loaded ({e})") from None
    return str(name)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            result = condition()
            if result:
                return result
        time.sleep(0.5)
    raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")


@contextlib.contextmanager
def services(root: Path) -> Iterator[dict[str, str]]:
    """Redis and the MongoDB wire server; their URLs. Stopped on the way out."""
    from fglab.embedded import mongo

    stack = contextlib.ExitStack()
    with stack:
        server = shutil.which("redis-server")
        if server is None:
            raise NoGpu("redis-server is not installed (apt-get install redis-server)")
        port = free_port()
        redis = subprocess.Popen(
            [
                server,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--logfile",
                str(root / "redis.log"),
            ]
        )
        stack.callback(_stop, redis)
        url = f"redis://127.0.0.1:{port}/0"
        wait_until(lambda: _redis_answers(url), 15, "Redis")
        database = mongo.start("memory", log=root / "mongodb.log")
        stack.callback(database.stop)
        yield {"REDIS_URL": url, "MONGODB_URI": database.uri}


def _redis_answers(url: str) -> bool:
    from redis import Redis

    client = Redis.from_url(url)
    try:
        return bool(client.ping())
    except Exception:
        return False
    finally:
        client.close()


def _stop(process: subprocess.Popen[Any]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def api(port: int, method: str, path: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=data, method=method,
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def run_check(root: Path, model: str) -> list[tuple[str, bool, str]]:
    """Start the fleet under `root`, run the experiments, return (check, passed, detail)."""
    from pymongo import MongoClient

    with services(root) as urls, contextlib.ExitStack() as stack:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("FGLAB_")}
        env.update(urls)
        env.pop("CUDA_VISIBLE_DEVICES", None)  # the worker sees every GPU
        env.update({
            "FGLAB_MACHINE": MACHINE, "FGLAB_HEARTBEAT": "1", "FGLAB_PORT": str(port),
            "FGLAB_HOST": "127.0.0.1", "FGLAB_DATA_DIR": str(root / "data"),
            "FGLAB_PROJECTS_FILE": str(root / "projects.json"), "PYTHONUNBUFFERED": "1",
        })  # fmt: skip
        program = root / "program.py"
        program.write_text(PROGRAM)

        def start(name: str, *command: str) -> None:
            log = (root / f"{name}.log").open("wb")
            stack.callback(log.close)
            process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
            stack.callback(_stop, process)

        python = sys.executable
        start("web", python, "-m", "fglab.cli", "web")
        wait_until(lambda: api(port, "GET", "/api/v1/projects") == [], 60, "FGLab's API")
        schema = {"note": {"type": "string", "default": "gpu-check"}}
        project = _create_project(port, schema)
        (root / "projects.json").write_text(json.dumps({project: {
            "cwd": str(root), "command": python,
            "args": [str(program), f"--results={root / 'results'}"],
            "options": "double-dash", "capacity": 0.1, "gpu_capacity": 0.5,
            "results": str(root / "results"),
        }}))  # fmt: skip
        start("scheduler", python, "-m", "celery", "-A", "fglab.jobs", "worker", "-Q", "fglab",
              "--pool", "threads", "-c", "4", "-B", "-s", str(root / "beat"))  # fmt: skip
        start("worker", python, "-m", "celery", "-A", "worker", "worker",
              "-Q", f"machine-{MACHINE}", "-n", f"{MACHINE}@%h")  # fmt: skip
        db: Any = MongoClient(urls["MONGODB_URI"], tz_aware=True)["fglab"]
        stack.callback(db.client.close)
        wait_until(lambda: (db["machines"].find_one({"_id": MACHINE}) or {}).get("projects"),
                   90, "the worker to register")  # fmt: skip
        ids = api(port, "POST", f"/api/v1/projects/{project}/batch",
                  [{"note": f"run {i}"} for i in range(EXPERIMENTS)])["_ids"]  # fmt: skip
        peak_machine_memory = 0

        def all_ended() -> bool:
            nonlocal peak_machine_memory
            record = db["machines"].find_one({"_id": MACHINE}) or {}
            for gpu in record.get("gpu_details") or []:
                if gpu.get("index") == 0:
                    peak_machine_memory = max(peak_machine_memory, gpu.get("memory_used") or 0)
            statuses = [_doc(db, i).get("_status") for i in ids]
            return all(s in {"success", "fail", "killed", "timeout", "lost"} for s in statuses)

        wait_until(all_ended, 60 + EXPERIMENTS * (HOLD_SECONDS + 20), "the experiments to end")
        docs = [_doc(db, i) for i in ids]
        record = db["machines"].find_one({"_id": MACHINE}) or {}
    return checks(model, record, docs, peak_machine_memory)


def _create_project(port: int, schema: dict[str, Any]) -> str:
    boundary = "gpucheckboundary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="schema"; filename="gpu-check.json"'
        f"\r\nContent-Type: application/json\r\n\r\n{json.dumps(schema)}\r\n--{boundary}--\r\n"
    ).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v1/projects/schema", data=body, method="POST",
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=30) as response:
        return str(json.loads(response.read())["_id"])


def _doc(db: Any, experiment_id: str) -> dict[str, Any]:
    from bson import ObjectId

    return db["experiments"].find_one({"_id": ObjectId(experiment_id)}) or {}


def checks(
    model: str, record: dict[str, Any], docs: list[dict[str, Any]], machine_memory: int
) -> list[tuple[str, bool, str]]:
    """The check's verdicts from what the fleet recorded (pure: tested without a GPU)."""
    results = []
    details = record.get("gpu_details") or [{}]
    name = details[0].get("name")
    results.append(
        ("pynvml reported the real GPU on the machine record", name == model,
         f"NVML: {model!r}; record: {name!r}")
    )  # fmt: skip
    statuses = [d.get("_status") for d in docs]
    reasons = [(d.get("_exit") or {}).get("reason") for d in docs]
    results.append(
        ("every experiment succeeded", statuses == ["success"] * len(docs),
         f"{statuses}; exits {reasons}")
    )  # fmt: skip
    spans = [
        (d["_started"], d["_finished"]) for d in docs if d.get("_started") and d.get("_finished")
    ]
    most = max((sum(1 for s, f in spans if s <= at < f) for at, _ in spans), default=0)
    results.append(("2 ran at once, never more", most == 2, f"most at once: {most}"))
    seen = [(d.get("cuda_visible_devices"), d.get("_gpu")) for d in docs]
    each_saw_its_gpu = bool(seen) and all(s == str(g) and g is not None for s, g in seen)
    results.append(
        ("each program saw CUDA_VISIBLE_DEVICES = its GPU", each_saw_its_gpu,
         f"(seen, given): {seen}")
    )  # fmt: skip
    peaks = [((d.get("_resources") or {}).get("gpu_memory") or {}).get("peak") or 0 for d in docs]
    mib = [p // 2**20 for p in peaks]
    results.append(
        ("telemetry shows each program's GPU memory", all(p >= HOLD_BYTES for p in peaks),
         f"peaks (MiB): {mib}, held {HOLD_BYTES // 2**20}")
    )  # fmt: skip
    results.append(
        ("the machine's GPU memory showed two programs at once",
         machine_memory >= 2 * HOLD_BYTES, f"peak used on GPU 0: {machine_memory // 2**20} MiB")
    )  # fmt: skip
    return results


def main() -> int:
    try:
        model = real_gpu()
    except NoGpu as e:
        print(f"gpu_check: no GPU to check on this machine: {e}", file=sys.stderr)
        return 2
    print(f"gpu_check: GPU 0 is {model}")
    root = Path(tempfile.mkdtemp(prefix="fglab-gpu-check-"))
    try:
        results = run_check(root, model)
    except (NoGpu, TimeoutError, OSError) as e:
        print(f"gpu_check: FAIL: {e}; logs in {root}", file=sys.stderr)
        for log in sorted(root.glob("*.log")):
            print(f"----- {log.name} (tail) -----\n{log.read_text(errors='replace')[-3000:]}")
        return 1
    for name, passed, detail in results:
        print(f"{'PASS' if passed else 'FAIL'}  {name}: {detail}")
    ok = all(passed for _, passed, _ in results)
    print(f"gpu_check: {'all checks passed' if ok else 'a check failed'} (logs in {root})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
