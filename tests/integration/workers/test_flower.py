"""Flower as shipped (``fglab flower``, what the Procfile and docker-compose run): behind
FGLab's password, with task events, its HTTP API showing the fleet's workers and runs."""

from __future__ import annotations

import base64
import json
import socket
import urllib.error
import urllib.request
from typing import Any

from fglab.monitor import FLOWER_USER
from tests.integration.fleet import implementation, live, machine_name, status_of, submit
from tests.waiting import wait_for

PASSWORD = "flower-secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(port: int, path: str, password: str | None = PASSWORD) -> tuple[int, Any]:
    """GET Flower's `path` (with basic auth when `password`): (status, JSON, text or None)."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if password is not None:
        token = base64.b64encode(f"{FLOWER_USER}:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
            is_json = response.headers.get_content_type() == "application/json"
            return response.status, json.loads(body) if is_json else body.decode()
    except urllib.error.HTTPError as e:
        return e.code, None
    except (urllib.error.URLError, ConnectionError):
        return 0, None  # not listening yet


def test_flower_shows_the_worker_and_its_runs_behind_fglabs_password(
    client, db, fleet, project, tmp_path
) -> None:
    name = machine_name()
    port = free_port()
    fleet.start_scheduler()
    flower = fleet.start_flower(port, password=PASSWORD)
    wait_for(lambda: get(port, "/healthcheck", None)[0] == 200, timeout=30, what="Flower")
    machine = fleet.start_machine(name, {str(project["_id"]): implementation(tmp_path)})
    wait_for(live(db, name), timeout=30, what="the machine to register")
    # Task events are off until a monitor asks for them: Flower turns them on as it runs.
    wait_for(
        lambda: "Events of group {task} enabled by remote" in machine.output(),
        timeout=30,
        what="Flower to turn the worker's task events on",
    )

    experiment_id = submit(client, project)
    wait_for(lambda: status_of(db, experiment_id) == "success", timeout=60, what="the run")

    assert get(port, "/api/workers", password=None)[0] == 401
    assert get(port, "/api/workers", password="wrong")[0] == 401
    workers = wait_for(
        lambda: (
            (answer := get(port, "/api/workers?refresh=1"))[0] == 200
            and any(key.startswith(f"{name}@") for key in answer[1] or {})
            and answer[1]
        ),
        timeout=30,
        what=f"Flower's API to list the worker {name}",
    )
    worker = next(value for key, value in workers.items() if key.startswith(f"{name}@"))
    assert f"machine-{name}" in [queue["name"] for queue in worker["active_queues"]]

    def run_task() -> dict[str, Any] | None:
        status, tasks = get(port, "/api/tasks")
        found = [t for t in (tasks or {}).values() if experiment_id in str(t.get("kwargs"))]
        return found[0] if status == 200 and found and found[0]["state"] == "SUCCESS" else None

    task = wait_for(run_task, timeout=30, what="Flower's API to show the run's task succeed")
    assert task["name"] == "fglab.run_experiment"
    assert task["worker"].startswith(f"{name}@")
    assert "'status': 'success'" in task["result"]
    assert flower.alive()
