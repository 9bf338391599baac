"""An experiment's whole path, with real worker processes, Redis and MongoDB."""

from __future__ import annotations

import json

import pytest
from bson import ObjectId

from tests.integration.fleet import (
    SCHEMA,
    experiment,
    implementation,
    ledger_empty,
    live,
    machine_name,
    new_project,
    process_alive,
    serves,
    status_of,
    submit,
)
from tests.waiting import wait_for


def test_results_land_in_mongodb_and_gridfs(client, db, fleet, project, tmp_path):
    name = machine_name()
    fleet.start_scheduler()
    fleet.start_machine(name, {str(project["_id"]): implementation(tmp_path)})
    wait_for(live(db, name), timeout=30, what="the machine to register")

    experiment_id = submit(client, project, queue=False)
    wait_for(
        lambda: status_of(db, experiment_id) == "success",
        timeout=60,
        what="the experiment to succeed",
    )

    doc = client.get(f"/api/v1/experiments/{experiment_id}").json
    assert doc["_scores"] == {"accuracy": 0.91, "loss": 0.2}
    assert doc["_charts"]["columnNames"] == ["train", "x"]
    assert doc["Notes"] == "final"
    assert doc["_machine_id"] == name
    assert doc["_exit"]["code"] == 0
    names = sorted(f["filename"] for f in doc["_files"])
    assert names == ["log.txt", "plot.png"]
    log = next(f for f in doc["_files"] if f["filename"] == "log.txt")
    assert client.get(f"/api/v1/files/{log['_id']}").data == b"epoch 1\nepoch 2\n"
    assert db["fs.files"].count_documents({"filename": "log.txt"}) == 1
    assert not (tmp_path / "results" / experiment_id).exists()


def running_on(db, ids):
    docs = db["experiments"].find({"_id": {"$in": [ObjectId(i) for i in ids]}})
    return {str(d["_id"]): d for d in docs}


def test_capacity_half_runs_two_and_the_third_starts_when_one_ends(
    client, db, fleet, project, ledger, tmp_path
):
    name = machine_name()
    # Without beat there is no periodic sweep, and projects.json never changes: the only
    # thing left that can dispatch the third experiment is the first one's end (no hooks,
    # no sweep: the machine's nudge on the dispatch channel).
    fleet.start_scheduler(beat=False)
    fleet.start_machine(name, {str(project["_id"]): implementation(tmp_path, capacity="0.5")})
    wait_for(live(db, name), timeout=30, what="the machine to register")

    gates = [tmp_path / f"gate-{i}" for i in range(3)]
    ids = [submit(client, project, mode="sleep", until=str(gate)) for gate in gates]
    wait_for(
        lambda: [status_of(db, i) for i in ids[:2]] == ["running"] * 2,
        timeout=30,
        what="the first two experiments to run",
    )
    assert status_of(db, ids[2]) == "queued"
    assert ledger.usage(name).cpu_used == pytest.approx(1.0)

    gates[0].touch()
    wait_for(
        lambda: status_of(db, ids[2]) == "running",
        timeout=30,
        what="the first experiment's end to dispatch the third",
    )
    docs = running_on(db, ids)
    assert docs[ids[2]]["_started"] > docs[ids[0]]["_finished"]
    assert docs[ids[0]]["_status"] == "success"

    for gate in gates[1:]:
        gate.touch()
    wait_for(
        lambda: all(status_of(db, i) == "success" for i in ids),
        timeout=30,
        what="all three experiments to succeed",
    )
    wait_for(lambda: ledger_empty(ledger, name), timeout=30, what="the machine's leases to go")


def test_gpu_slots_fit_on_one_gpu_each_and_the_fifth_waits(
    client, db, fleet, project, ledger, tmp_path
):
    name = machine_name()
    fleet.start_scheduler()
    impl = implementation(tmp_path, capacity=0.1, gpu_capacity="0.5", gpu_command="--gpu")
    fleet.start_machine(name, {str(project["_id"]): impl}, gpus=2)
    wait_for(live(db, name), timeout=30, what="the machine to register")

    gate = tmp_path / "gate"
    ids = [submit(client, project, mode="sleep", until=str(gate)) for _ in range(5)]
    wait_for(
        lambda: sum(status_of(db, i) == "running" for i in ids) == 4,
        timeout=30,
        what="four experiments to run",
    )
    assert status_of(db, ids[4]) == "queued"
    results = tmp_path / "results"
    envs = wait_for(
        lambda: (
            [json.loads((results / i / "env.json").read_text()) for i in ids[:4]]
            if all((results / i / "env.json").exists() for i in ids[:4])
            else None
        ),
        timeout=30,
        what="the four programs to report their GPU",
    )
    visible = sorted(env["gpu_env"]["CUDA_VISIBLE_DEVICES"] for env in envs)
    assert visible == ["0", "0", "1", "1"]
    for env in envs:
        argv = env["argv"]
        assert argv[argv.index("--gpu") + 1] == env["gpu_env"]["CUDA_VISIBLE_DEVICES"]
    assert ledger.usage(name, 2).gpu_used == (1.0, 1.0)

    gate.touch()
    wait_for(
        lambda: all(status_of(db, i) == "success" for i in ids),
        timeout=60,
        what="all five experiments to succeed",
    )
    wait_for(lambda: ledger_empty(ledger, name, 2), timeout=30, what="the machine's leases to go")


def test_two_machines_share_work_and_a_project_goes_only_where_implemented(
    client, store, db, fleet, project, tmp_path
):
    other = new_project(store, prefix="only")
    first, second = sorted([machine_name(), machine_name()])
    fleet.start_scheduler()
    fleet.start_machine(
        first,
        {
            str(project["_id"]): implementation(tmp_path),
            str(other["_id"]): implementation(tmp_path, capacity=0.25),
        },
    )
    fleet.start_machine(second, {str(project["_id"]): implementation(tmp_path)})
    wait_for(
        lambda: live(db, first)() and live(db, second)(),
        timeout=30,
        what="both machines to register",
    )

    gate = tmp_path / "gate"
    shared = [submit(client, project, mode="sleep", until=str(gate)) for _ in range(2)]
    wait_for(
        lambda: all(status_of(db, i) == "running" for i in shared),
        timeout=30,
        what="both shared experiments to run",
    )
    machines = {d["_machine_id"] for d in running_on(db, shared).values()}
    assert machines == {first, second}

    gate.touch()
    only = [submit(client, other, mode="write", until="none") for _ in range(3)]
    wait_for(
        lambda: all(status_of(db, i) == "success" for i in only),
        timeout=60,
        what="the three experiments of the one-machine project to succeed",
    )
    assert {d["_machine_id"] for d in running_on(db, only).values()} == {first}


def test_failing_missing_and_killed_programs_end_with_their_reason(
    client, store, db, fleet, project, ledger, tmp_path
):
    broken = new_project(store, prefix="broken")
    name = machine_name()
    fleet.start_scheduler()
    fleet.start_machine(
        name,
        {
            str(project["_id"]): implementation(tmp_path, capacity=0.3),
            str(broken["_id"]): implementation(tmp_path, command="/nonexistent/trainer"),
        },
    )
    wait_for(live(db, name), timeout=30, what="the machine to register")

    failing = submit(client, project, queue=False, mode="fail")
    wait_for(
        lambda: status_of(db, failing) == "fail", timeout=30, what="the failing program to fail"
    )
    doc = store.get_experiment(failing)
    assert doc["_exit"]["code"] == 3
    assert "exited with code 3" in doc["_exit"]["reason"]
    assert "about to fail" in doc["_exit"]["reason"]

    missing = submit(client, broken, queue=False)
    wait_for(
        lambda: status_of(db, missing) == "fail",
        timeout=30,
        what="the experiment with a missing command to fail",
    )
    reason = store.get_experiment(missing)["_exit"]["reason"]
    assert "could not start '/nonexistent/trainer'" in reason
    assert "No such file or directory" in reason

    pids_file = tmp_path / "pids.json"
    tree_project = new_project(
        store, {**SCHEMA, "pids": {"type": "string", "default": "x"}}, prefix="tree"
    )
    fleet.write_projects(
        name,
        {
            str(project["_id"]): implementation(tmp_path, capacity=0.3),
            str(tree_project["_id"]): implementation(tmp_path, capacity=0.3),
        },
    )
    wait_for(
        serves(db, name, tree_project),
        timeout=30,
        what="the machine to reload projects.json with the tree project",
    )
    killed = submit(client, tree_project, queue=False, mode="tree", pids=pids_file)
    pids = wait_for(
        lambda: json.loads(pids_file.read_text()) if pids_file.exists() else None,
        timeout=30,
        what="the program tree to write its pids",
    )
    wait_for(
        lambda: status_of(db, killed) == "running", timeout=30, what="the tree experiment to run"
    )
    assert client.post(f"/api/v1/experiments/{killed}/kill").status_code == 200
    wait_for(
        lambda: status_of(db, killed) == "killed",
        timeout=30,
        what="the tree experiment to be killed",
    )
    assert not [pid for pid in pids if process_alive(pid)]
    wait_for(lambda: ledger_empty(ledger, name), timeout=30, what="the machine's leases to go")


def test_logs_are_complete_in_order_live_and_after_the_end(
    client, store, db, fleet, project, tmp_path
):
    name = machine_name()
    fleet.start_scheduler()
    fleet.start_machine(name, {str(project["_id"]): implementation(tmp_path)})
    wait_for(live(db, name), timeout=30, what="the machine to register")
    printer = new_project(store, {**SCHEMA, "lines": {"type": "int", "default": 10}}, "print")
    fleet.write_projects(
        name,
        {
            str(project["_id"]): implementation(tmp_path),
            str(printer["_id"]): implementation(tmp_path),
        },
    )
    wait_for(
        serves(db, name, printer),
        timeout=30,
        what="the machine to reload projects.json with the printer project",
    )
    experiment_id = submit(client, printer, queue=False, mode="print", lines=2000)
    wait_for(
        lambda: status_of(db, experiment_id) == "success",
        timeout=30,
        what="the printing experiment to succeed",
    )

    expected_out = "".join(f"line {i}\n" for i in range(0, 2000, 2))
    expected_err = "".join(f"line {i}\n" for i in range(1, 2000, 2))
    assert read_log(client, experiment_id) == (expected_out, expected_err)

    from redis import Redis

    from tasks.logs import log_key

    Redis.from_url(store_settings_redis(client)).delete(log_key(experiment_id))
    assert read_log(client, experiment_id) == (expected_out, expected_err)


def store_settings_redis(client) -> str:
    from fglab.extensions import services

    return services(client.application).settings.redis


def read_log(client, experiment_id: str) -> tuple[str, str]:
    out, err, after = [], [], None
    while True:
        query = f"?after={after}" if after else ""
        page = client.get(f"/api/v1/experiments/{experiment_id}/logs{query}").json
        for entry in page["entries"]:
            {"out": out, "err": err}.get(entry["s"], []).append(entry["t"])
        if not page["entries"]:
            return "".join(out), "".join(err)
        after = page["last"]


def test_queued_work_starts_when_a_machine_appears(client, store, db, fleet, project, tmp_path):
    fleet.start_scheduler()
    experiment_id = submit(client, project, mode="write")
    assert status_of(db, experiment_id) == "queued"
    assert client.post(
        f"/api/v1/projects/{project['_id']}/experiment", json={"mode": "write", "until": "none"}
    ).json == {"error": "No machine capacity available"}

    name = machine_name()
    fleet.start_machine(name, {str(project["_id"]): implementation(tmp_path)})
    wait_for(
        lambda: status_of(db, experiment_id) == "success",
        timeout=60,
        what="the queued experiment to succeed on the new machine",
    )
    assert store.get_experiment(experiment_id)["_machine_id"] == name


def test_add_to_machine_writes_a_template_the_machine_then_serves(
    client, db, fleet, project, tmp_path
):
    name = machine_name()
    fleet.start_machine(name, {})
    wait_for(live(db, name), timeout=30, what="the machine to register")
    answer = client.post(f"/api/v1/machines/{name}/projects/{project['_id']}")
    assert answer.status_code == 202, answer.json

    projects_file = fleet.root / name / "projects.json"
    entry = wait_for(
        lambda: json.loads(projects_file.read_text()).get(str(project["_id"])),
        timeout=30,
        what="the machine to write the project's template into projects.json",
    )
    assert entry["command"] and entry["options"] == "double-dash" and entry["capacity"] == 1
    wait_for(serves(db, name, project), timeout=30, what="the machine to publish the project")


def test_a_chart_of_a_million_points_is_stored_and_served_whole(client, store, db, fleet, tmp_path):
    schema = {**SCHEMA, "points": {"type": "int", "default": 10}}
    big = new_project(store, schema, prefix="big")
    name = machine_name()
    fleet.start_scheduler()
    fleet.start_machine(name, {str(big["_id"]): implementation(tmp_path)})
    wait_for(live(db, name), timeout=30, what="the machine to register")

    experiment_id = submit(client, big, queue=False, mode="bigchart", points=500_000)
    wait_for(
        lambda: status_of(db, experiment_id) == "success",
        timeout=120,
        what="the big-chart experiment to succeed",
    )

    raw = experiment(db, experiment_id)
    assert "_fglab_large" in raw["_charts"]
    chart = client.get(f"/api/v1/experiments/{experiment_id}").json["_charts"]
    train, val, x1, x2 = chart["data"]["columns"]
    assert len(train) == len(val) == len(x1) == len(x2) == 500_000
    assert train[-1] == 1.0 / 500_000 and x2[-1] == 499_999
