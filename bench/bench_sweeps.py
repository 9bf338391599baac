"""Sweeps on a real fleet, run by hand: Bayesian search against random search on Branin,
and the wall-clock that median pruning saves.

    python bench/bench_sweeps.py [--seeds 5] [--budget 40] [--parallelism 4]
                                 [--only branin|pruning] [--redis redis://...] [--json PATH]

Starts an embedded MongoDB (memory engine), a scheduler process and one machine worker
with room for `parallelism` trials, on this host.

branin: `bayes` and random sweeps of `budget` trials, seeds 0 to `seeds` - 1, on a
program computing the Branin function of x in [-5, 10), y in [0, 15) (global minimum
0.398); prints each best, bayes seed 0's against random's median, and bayes' median.

pruning: 32 random trials (seed 7) of a program reporting a loss curve over 20 steps of
0.1 s, its final loss set by the option `final` in [0, 4), the same for every trial
before step 3 (so a bad trial is recognisable from step 3); once with `median` pruning
(warm-up: steps 1-2, judged from step 3), once without. Prints how many were pruned
(with their reasons and last steps), both bests, both wall-clocks (sweep created to
sweep finished), and the latencies from a step's write to the pruner's decision and from
the decision to the program's TERM (p50, p99); ``--json`` writes these figures
(``bench/suite.py`` runs it so and puts them in its table).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import uuid
from datetime import UTC
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
#: Every trial reports the same loss before this step: the pruner can tell from it on.
FLAT_UNTIL = 3
PRUNE = {"pruner": "median", "n_startup_trials": 4, "n_warmup_steps": FLAT_UNTIL}
PRUNING_BUDGET = 32
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
        project = self.store.projects.get(
            self.store.projects.create(f"{program}-{uuid.uuid4().hex[:6]}", schema)
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


def pruning(bench: Bench, parallelism: int) -> dict[str, Any]:
    """Run the pruning comparison, print it; its figures (for ``--json``, bench/suite.py)."""
    stamps = bench.root / "stamps.txt"
    schema = {
        **CURVE_SCHEMA,
        "flat": {"type": "int", "default": FLAT_UNTIL},
        "stamps": {"type": "string", "default": str(stamps)},
    }
    project = bench.project("curve.py", schema)
    common = {
        "method": "random",
        "space": {"final": {"min": 0, "max": 4}},
        "objective": {"score": "loss", "goal": "minimize"},
        "budget": PRUNING_BUDGET,
        "parallelism": parallelism,
        "seed": 7,
    }
    pruned_run = bench.sweep(project, prune=PRUNE, **common)
    plain_run = bench.sweep(project, **common)
    written, termed = _stamps(stamps)
    pruned = [t for t in pruned_run["trials"] if t["status"] == "pruned"]
    last_steps, to_decision, to_term = [], [], []
    for trial in pruned:
        steps = [p["step"] for p in bench.store.history(trial["experiment"])]
        last_steps.append(max(steps))
        doc = bench.store.get_experiment(
            ObjectId(trial["experiment"]), ["_prune", "_kill_requested"]
        )
        decided = doc["_kill_requested"].replace(tzinfo=UTC).timestamp()
        step_at = written.get((str(trial["experiment"]), doc["_prune"]["step"]))
        if step_at is not None:
            to_decision.append(decided - step_at)
        if str(trial["experiment"]) in termed:
            to_term.append(termed[str(trial["experiment"])] - decided)
        print(f"  trial {trial['trial']:2d} last step {max(steps):2d}: {trial['reason']}")
    if os.environ.get("BENCH_TIMELINE"):
        _timeline(bench, pruned_run)
    saved = plain_run["wall"] - pruned_run["wall"]
    same = pruned_run["best"]["objective"] == plain_run["best"]["objective"]
    print(
        f"pruning, {PRUNING_BUDGET} trials of 20 steps x 0.1 s, a bad trial recognisable at "
        f"step {FLAT_UNTIL}, parallelism {parallelism}: {len(pruned)} pruned, the last step "
        f"any reached {max(last_steps, default=0)} (target <= 5); best "
        f"{pruned_run['best']['objective']:.4f} with pruning, "
        f"{plain_run['best']['objective']:.4f} without (the same: {same}); wall-clock "
        f"{pruned_run['wall']:.1f} s with, {plain_run['wall']:.1f} s without: saved "
        f"{saved:.1f} s ({saved / plain_run['wall']:.0%}, target >= 35%)"
    )
    latencies = {}
    for name, values in (("step -> decision", to_decision), ("decision -> TERM", to_term)):
        if values:
            values.sort()
            p50 = statistics.median(values)
            p99 = values[min(len(values) - 1, round(0.99 * (len(values) - 1)))]
            latencies[name] = {"p50": p50, "p99": p99, "n": len(values)}
            print(
                f"  {name}: p50 {1000 * p50:.0f} ms, p99 {1000 * p99:.0f} ms over "
                f"{len(values)} pruned trials (target p50 < 100 ms)"
            )
    return {
        "trials": PRUNING_BUDGET,
        "recognisable_at": FLAT_UNTIL,
        "parallelism": parallelism,
        "pruned": len(pruned),
        "last_steps": sorted(last_steps),
        "best_pruned": pruned_run["best"]["objective"],
        "best_plain": plain_run["best"]["objective"],
        "wall_pruned": pruned_run["wall"],
        "wall_plain": plain_run["wall"],
        "latencies": latencies,
    }


def _timeline(bench: Bench, run: dict[str, Any]) -> None:
    """Each trial's created, dispatched, claimed, started and finished, in seconds."""
    docs = [bench.store.get_experiment(ObjectId(t["experiment"]), None) for t in run["trials"]]
    zero = min(d["_created"] for d in docs)
    for d in sorted(docs, key=lambda d: d["_created"]):
        marks = [
            f"{(d[k] - zero).total_seconds():6.2f}" if d.get(k) else "   -  "
            for k in ("_created", "_dispatched", "_claimed", "_started", "_finished")
        ]
        print(f"  trial {d['_trial']:2d} {' '.join(marks)} {d['_status']}")


def _stamps(path: Path) -> tuple[dict[tuple[str, int], float], dict[str, float]]:
    """curve.py's stamps: when each (experiment, step) was written, when TERM came."""
    written: dict[tuple[str, int], float] = {}
    termed: dict[str, float] = {}
    for line in path.read_text().splitlines() if path.exists() else []:
        parts = line.split()
        if parts[1] == "step":
            written[(parts[0], int(parts[2]))] = float(parts[3])
        elif parts[1] == "term":
            termed[parts[0]] = float(parts[2])
    return written, termed


def _options(options: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.3f}" for k, v in options.items() if isinstance(v, float))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--budget", type=int, default=40)
    parser.add_argument("--parallelism", type=int, default=4)
    parser.add_argument("--only", choices=("branin", "pruning"))
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/10")
    parser.add_argument("--json", type=Path, help="write the pruning figures here")
    args = parser.parse_args()

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # a line per decision otherwise

    with embedded_fleet(args.redis, "bench-sweeps-") as (settings, db, fleet, root):
        bench = Bench(settings, db, fleet, root, capacity=1 / args.parallelism)
        if args.only in (None, "branin"):
            branin(bench, args.seeds, args.budget, args.parallelism)
        if args.only in (None, "pruning"):
            figures = pruning(bench, args.parallelism)
            if args.json:
                args.json.write_text(json.dumps(figures, indent=2))
        fleet.stop_all()
        bench.app.extensions["fglab"].redis.close()


if __name__ == "__main__":
    main()
