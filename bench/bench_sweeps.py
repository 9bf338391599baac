"""Sweeps on a real fleet, run by hand: Bayesian search against random search on Branin,
and the wall-clock that median pruning saves.

    python bench/bench_sweeps.py [--seeds 5] [--budget 40] [--parallelism 4]
                                 [--only branin|pruning] [--redis redis://...]

Starts an embedded MongoDB (memory engine), a scheduler process and one machine worker
with room for `parallelism` trials, on this host.

branin: `bayes` and random sweeps of `budget` trials, seeds 0 to `seeds` - 1, on a
program computing the Branin function of x in [-5, 10), y in [0, 15) (global minimum
0.398); prints each best, bayes seed 0's against random's median, and bayes' median.

pruning: 16 random trials (seed 7) of a program reporting a loss curve over 20 steps of
0.1 s, its final loss set by the option `final` in [0, 4); once with `median` pruning,
once without. Prints how many were pruned (with their reasons and last steps), both
bests and both wall-clocks (sweep created to sweep finished).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import uuid
from pathlib import Path
from typing import Any

from pymongo.database import Database

# The programs and fleet helpers live with the tests, which are not an installed package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bson import ObjectId

from bench.bench_fleet import embedded_fleet
from config import Settings
from fglab.app import create_app
from fglab.store import Store
from tests.integration.fleet import Fleet, implementation, live, serves
from tests.waiting import wait_for

PROGRAMS = Path(__file__).resolve().parents[1] / "tests" / "integration" / "programs"
BRANIN_SCHEMA = {"x": {"type": "float", "default": 0.0}, "y": {"type": "float", "default": 0.0}}
BRANIN_SPACE = {"x": {"min": -5, "max": 10}, "y": {"min": 0, "max": 15}}
CURVE_SCHEMA = {
    "final": {"type": "float", "default": 0.5},
    "steps": {"type": "int", "default": 20},
    "delay": {"type": "float", "default": 0.1},
}
PRUNE = {"pruner": "median", "n_startup_trials": 4}
SWEEP_TIMEOUT = 900.0


class Bench:
    """One fleet (scheduler and machine) and the API, for sweeps of several projects."""

    def __init__(
        self, settings: Settings, db: Database, fleet: Fleet, root: Path, capacity: float
    ) -> None:
        store = Store(db)
        store.ensure_indexes()
        self.db = db
        self.app = create_app(settings, store=store)
        self.client = self.app.test_client()
        self.store = store
        self.fleet = fleet
        self.root = root
        self.capacity = capacity
        self.projects: dict[str, dict[str, Any]] = {}
        self.machine = "bench-sweeps"
        fleet.start_scheduler()
        fleet.start_machine(self.machine, {}, concurrency=8)
        wait_for(live(self.db, self.machine), 60, "the machine to register")

    def project(self, program: str, schema: dict[str, Any]) -> dict[str, Any]:
        project = self.store.get_project(
            self.store.create_project(f"{program}-{uuid.uuid4().hex[:6]}", schema)
        )
        entry = implementation(
            self.root,
            args=[str(PROGRAMS / program), "--results", str(self.root / "results")],
            capacity=self.capacity,
        )
        self.projects[str(project["_id"])] = entry
        self.fleet.write_projects(self.machine, self.projects)
        wait_for(serves(self.db, self.machine, project), 30, "the machine to serve it")
        return project

    def sweep(self, project: dict[str, Any], **body: Any) -> dict[str, Any]:
        """Run a sweep to its end; its view, with `wall` (seconds, created to finished)."""
        answer = self.client.post(f"/api/v1/projects/{project['_id']}/sweeps", json=body)
        assert answer.status_code == 201, answer.json
        sweep_id = answer.get_json()["_id"]

        def finished() -> dict[str, Any] | None:
            view: dict[str, Any] = self.client.get(f"/api/v1/sweeps/{sweep_id}").get_json()
            return view if view["state"] == "finished" else None

        view = wait_for(finished, SWEEP_TIMEOUT, f"sweep {sweep_id} to finish", interval=0.5)
        assert view is not None
        doc = self.store.sweeps.get(ObjectId(sweep_id))
        assert doc is not None
        view["wall"] = (doc["finished"] - doc["created"]).total_seconds()
        return view


def branin(bench: Bench, seeds: int, budget: int, parallelism: int) -> None:
    project = bench.project("branin.py", BRANIN_SCHEMA)
    common = {
        "space": BRANIN_SPACE,
        "objective": {"score": "branin", "goal": "minimize"},
        "budget": budget,
        "parallelism": parallelism,
    }
    runs: dict[str, list[float]] = {"bayes": [], "random": []}
    for seed in range(seeds):
        for method, bests in runs.items():
            sweep = bench.sweep(project, method=method, seed=seed, **common)
            bests.append(sweep["best"]["objective"])
            print(
                f"{method:6} (seed {seed}): best {bests[-1]:.4f} at "
                f"{_options(sweep['best']['options'])}, {sweep['wall']:.1f} s, {sweep['counts']}"
            )
    first = runs["bayes"][0]
    bayes, random = (statistics.median(runs[m]) for m in ("bayes", "random"))
    print(
        f"branin, {budget} trials, parallelism {parallelism}: bayes (seed 0) best {first:.4f} "
        f"(below 1.0: {first < 1.0}); random median best of {seeds} seeds {random:.4f} "
        f"(bayes seed 0 beats it: {first < random}); bayes median best of {seeds} seeds "
        f"{bayes:.4f}"
    )


def pruning(bench: Bench, parallelism: int) -> None:
    project = bench.project("curve.py", CURVE_SCHEMA)
    common = {
        "method": "random",
        "space": {"final": {"min": 0, "max": 4}},
        "objective": {"score": "loss", "goal": "minimize"},
        "budget": 16,
        "parallelism": parallelism,
        "seed": 7,
    }
    pruned_run = bench.sweep(project, prune=PRUNE, **common)
    plain_run = bench.sweep(project, **common)
    pruned = [t for t in pruned_run["trials"] if t["status"] == "pruned"]
    for trial in pruned:
        steps = [p["step"] for p in bench.store.history(trial["experiment"])]
        print(f"  trial {trial['trial']:2d} last step {max(steps):2d}: {trial['reason']}")
    saved = plain_run["wall"] - pruned_run["wall"]
    print(
        f"pruning, 16 trials of 20 steps x 0.1 s, parallelism {parallelism}: "
        f"{len(pruned)} pruned (a third: {len(pruned) >= 16 / 3}); best "
        f"{pruned_run['best']['objective']:.4f} with pruning, "
        f"{plain_run['best']['objective']:.4f} without (equal: "
        f"{pruned_run['best']['objective'] == plain_run['best']['objective']}); wall-clock "
        f"{pruned_run['wall']:.1f} s with, {plain_run['wall']:.1f} s without: saved "
        f"{saved:.1f} s ({saved / plain_run['wall']:.0%})"
    )


def _options(options: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.3f}" for k, v in options.items() if isinstance(v, float))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--budget", type=int, default=40)
    parser.add_argument("--parallelism", type=int, default=4)
    parser.add_argument("--only", choices=("branin", "pruning"))
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/10")
    args = parser.parse_args()

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # a line per decision otherwise

    with embedded_fleet(args.redis, "bench-sweeps-") as (settings, db, fleet, root):
        bench = Bench(settings, db, fleet, root, capacity=1 / args.parallelism)
        if args.only in (None, "branin"):
            branin(bench, args.seeds, args.budget, args.parallelism)
        if args.only in (None, "pruning"):
            pruning(bench, args.parallelism)
        fleet.stop_all()
        bench.app.extensions["fglab"].redis.close()


if __name__ == "__main__":
    main()
