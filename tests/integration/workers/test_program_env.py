"""A program never sees FGLab's secrets (the password, the MongoDB and Redis URLs, an API
token) from its worker's environment, unless its projects.json entry names one in
``pass_env``: with a real worker and a program that reports the variables it got."""

from __future__ import annotations

import pytest

from tests.integration.fleet import (
    experiment,
    implementation,
    live,
    machine_name,
    new_project,
    status_of,
    submit,
)
from tests.waiting import wait_for

SECRETS = {"PASSWORD", "MONGODB_URI", "REDIS_URL", "FGLAB_TOKEN"}


def env_names(client, db, project) -> set[str]:
    experiment_id = submit(client, project, mode="env")
    wait_for(
        lambda: status_of(db, experiment_id) in {"success", "fail", "lost"},
        timeout=60,
        what="the program to end",
    )
    doc = experiment(db, experiment_id)
    assert doc["_status"] == "success", doc.get("_exit")
    return set(doc["EnvNames"])


@pytest.mark.security
def test_a_program_gets_no_secret_but_those_its_entry_passes(
    client, db, fleet, store, project, project_schema, tmp_path
):
    passing = new_project(store, project_schema)
    name = machine_name()
    fleet.start_scheduler()
    fleet.start_machine(
        name,
        {
            str(project["_id"]): implementation(tmp_path),
            str(passing["_id"]): implementation(tmp_path, pass_env=["REDIS_URL"]),
        },
        env={"PASSWORD": "s3cret", "FGLAB_TOKEN": "fglab_token"},
    )
    wait_for(live(db, name), timeout=30, what="the machine to register")

    names = env_names(client, db, project)
    assert not names & SECRETS
    assert {"PATH", "FGLAB_RESULTS_DIR"} <= names  # the rest of the environment stays

    assert env_names(client, db, passing) & SECRETS == {"REDIS_URL"}
