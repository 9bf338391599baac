"""The suite's sections: each measures FGLab and its baseline in the same run, and says so in rows.

A section is a function ``(services, sizes, report) -> None`` that adds rows and notes to
the report; a section that fails is reported as such and the others still run. Not run
by itself: ``bench/suite.py`` runs them in order.
"""

from __future__ import annotations

import json
import logging
import re
import statistics
import sys
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bench import growth, latency
from bench.report import Row, met, ratio
from bench.services import Counts, Services, run_group
from bench.systems import Drain, Ours, baseline, implementation, load_args, ours
from tests.integration.workers.test_load import CAPACITY

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
STORE_SCALE = REPO / "bench" / "bench_store_scale.py"
SWEEPS = REPO / "bench" / "bench_sweeps.py"
#: How long the pruning comparison (two sweeps of 32 trials) may take.
PRUNING_TIMEOUT = 900.0
#: Machine workers of the main comparison, and the baseline's worker processes.
WORKERS = 2
#: Programs a worker runs at once: 1 / CAPACITY on FGLab's machines, the baseline's pool alike.
AT_ONCE = round(1 / CAPACITY)
#: How many of the most frequent commands the table lists per system.
TOP_MONGO = 5
TOP_REDIS = 6


@dataclass(frozen=True)
class Sizes:
    label: str
    experiments: int  # the throughput comparison
    latency_runs: int
    spawn_runs: int
    queue_lengths: tuple[int, ...]
    dispatch_repeats: int
    fleet_machines: tuple[int, ...]
    fleet_experiments: int
    store_scale_args: tuple[str, ...]
    store_scale_timeout: float


def _store_scale(sizes: str, runs: int) -> tuple[str, ...]:
    """bench_store_scale.py's arguments: the memory engine (the suite's)."""
    return ("--engines", "memory", "--sizes", *sizes.split(","), "--repeats", str(runs))


FULL = Sizes(
    label="full",
    experiments=1000,
    latency_runs=50,
    spawn_runs=200,
    queue_lengths=(1, 10, 100, 1000),
    dispatch_repeats=5,
    fleet_machines=(1, 2, 3),
    fleet_experiments=300,
    store_scale_args=_store_scale("1000,10000,100000", runs=5),
    store_scale_timeout=1800.0,
)
QUICK = Sizes(
    label="quick",
    experiments=200,
    latency_runs=20,
    spawn_runs=200,
    queue_lengths=(1, 10, 100),
    dispatch_repeats=5,
    fleet_machines=(1, 2),
    fleet_experiments=100,
    store_scale_args=_store_scale("1000,10000", runs=5),
    store_scale_timeout=600.0,
)


@dataclass
class Report:
    """What the sections found: rows, notes under the table, output kept verbatim."""

    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    appendix: list[tuple[str, str]] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    #: Everything counted, by window, for --json: every command, not only the top ones.
    raw: dict[str, Any] = field(default_factory=dict)


Section = Callable[[Services, Sizes, Report], None]


# --- 1-3: FGLab against plain Celery and a direct Popen -------------------------------------


def throughput_operations_latency(services: Services, sizes: Sizes, report: Report) -> None:
    """Sections 1 to 3, which share FGLab's fleet: it drains the load, then runs one at a time."""
    n = sizes.experiments
    with ours(services, "main") as fglab:
        load_id = fglab.store.projects.create("bench-load", {})
        timing_id = fglab.store.projects.create("bench-latency", {})
        launches, stamps = fglab.root / "launches.txt", fglab.root / "stamps"
        stamps.mkdir(parents=True)
        fglab.start(
            WORKERS,
            {
                str(load_id): implementation(fglab.root, load_args(launches)),
                str(timing_id): implementation(fglab.root, latency.stamp_args(stamps)),
            },
        )
        logger.info("FGLab: draining %d experiments over %d workers", n, WORKERS)
        with services.window() as box:
            mine = fglab.load(load_id, n, launches)
        mine = replace(mine, counts=box[0])
        logger.info("FGLab: %d submit -> first line runs on an idle worker", sizes.latency_runs)
        submitted, stages = latency.fglab_submit_to_start(
            fglab, fglab.store.projects.get(timing_id), stamps, sizes.latency_runs
        )
    logger.info("baseline: draining %d tasks over %d Celery workers", n, WORKERS)
    with baseline(services, "main", WORKERS, AT_ONCE) as plain, services.window() as box:
        theirs = plain.load(n, plain.root / "launches.txt")
    theirs = replace(theirs, counts=box[0])
    direct_stamps = services.root / "direct-stamps"
    direct_stamps.mkdir()
    direct = latency.direct_popen_to_start(direct_stamps, sizes.latency_runs)
    launched, plain_popen = latency.spawn_seconds(sizes.spawn_runs, services.root)
    supervised = latency.supervised_seconds(sizes.spawn_runs, services.root)
    unforked = latency.supervised_seconds(sizes.spawn_runs, services.root, forked=False)
    rss = latency.resident_mib()

    report.rows += _throughput_rows(mine, theirs)
    report.rows += _operation_rows(mine, theirs)
    report.rows += _latency_rows(submitted, direct, launched, plain_popen, rss)
    report.rows += _stage_rows(stages)
    report.rows.append(_supervised_row(supervised, plain_popen))
    report.rows.append(_supervised_row(unforked, plain_popen, forked=False))
    report.raw["throughput"] = {"fglab": _raw(mine), "baseline": _raw(theirs)}
    report.raw["latency_s"] = {
        "fglab_submit_to_start": list(submitted),
        "stages": stages,
        "popen_to_start": list(direct),
        "launch": list(launched),
        "popen_true": list(plain_popen),
        "supervise_true": list(supervised),
        "supervise_true_unforked": list(unforked),
    }
    report.notes += _stranger_notes("throughput: FGLab", mine.counts)
    report.notes += _stranger_notes("throughput: baseline", theirs.counts)


def _raw(drain: Drain) -> dict[str, Any]:
    return {
        "experiments": drain.experiments,
        "drain_s": drain.drain_s,
        "statuses": dict(drain.statuses),
        "twice": drain.twice,
        "lost": drain.lost,
        **(_raw_counts(drain.counts) if drain.counts else {}),
    }


def _raw_counts(counts: Counts) -> dict[str, Any]:
    return {
        "mongo": dict(counts.mongo.most_common()),
        "redis": dict(counts.redis.most_common()),
        "redis_strangers": list(counts.strangers),
    }


def _throughput_rows(mine: Drain, theirs: Drain) -> list[Row]:
    n = mine.experiments
    return [
        Row(
            "1 throughput",
            f"{n} no-op experiments, {WORKERS} workers: submit -> all finished",
            f"{mine.drain_s:.1f} s",
            f"{theirs.drain_s:.1f} s",
            ratio(mine.drain_s, theirs.drain_s),
            "<= 1.5x",
            met(mine.drain_s <= 1.5 * theirs.drain_s),
        ),
        Row(
            "1 throughput",
            "experiments/s",
            f"{mine.per_second:.1f}",
            f"{theirs.per_second:.1f}",
            ratio(mine.per_second, theirs.per_second),
        ),
        Row(
            "1 throughput",
            "each launched exactly once (launches file)",
            mine.describe_runs(),
            theirs.describe_runs(),
            "",
            "all once",
            met(_all_once(mine) and _all_once(theirs)),
        ),
    ]


def _all_once(drain: Drain) -> bool:
    return drain.exactly_once and drain.statuses == Counter(success=drain.experiments)


def _operation_rows(mine: Drain, theirs: Drain) -> list[Row]:
    assert mine.counts is not None and theirs.counts is not None
    rows = []
    for kind, ours_counts, their_counts, target, top in (
        ("MongoDB ops", mine.counts.mongo, theirs.counts.mongo, 7, TOP_MONGO),
        ("Redis commands", mine.counts.redis, theirs.counts.redis, 30, TOP_REDIS),
    ):
        per_ours = sum(ours_counts.values()) / mine.experiments
        per_theirs = sum(their_counts.values()) / theirs.experiments
        polluted = kind.startswith("Redis") and bool(mine.counts.strangers)
        rows.append(
            Row(
                "2 operations",
                f"{kind} / experiment",
                f"{per_ours:.2f}",
                f"{per_theirs:.2f}",
                ratio(per_ours, per_theirs),
                f"ours <= {target}",
                "?" if polluted else met(per_ours <= target),
            )
        )
        names = _top(ours_counts, top) + _top(their_counts, top)
        for name in dict.fromkeys(names):
            a = ours_counts[name] / mine.experiments
            b = their_counts[name] / theirs.experiments
            rows.append(
                Row(
                    "2 operations",
                    f"  {kind.split()[0]} {name}",
                    f"{a:.2f}",
                    f"{b:.2f}",
                    ratio(a, b),
                )
            )
    return rows


def _top(counts: Counter[str], n: int) -> list[str]:
    return [name for name, _ in counts.most_common(n)]


def _stranger_notes(window: str, counts: Counts | None) -> list[str]:
    if counts is None or not counts.strangers:
        return []
    databases = sorted({entry.split("(db ")[1].split(",")[0] for entry in counts.strangers})
    return [
        f"{window}: {len(counts.strangers)} client(s) of other Redis database(s) "
        f"({', '.join(databases)}) sent commands in the window, so its Redis counts include "
        "theirs; rerun with --own-redis for exact counts."
    ]


def _supervised_row(
    supervised: Sequence[float], plain: Sequence[float], forked: bool = True
) -> Row:
    """The supervisor's start: forked by the worker's fork server, or (its fallback) a
    Python of its own."""
    a, b = statistics.median(supervised), statistics.median(plain)
    p99 = latency.Percentiles.of(supervised).p99
    how = "forked by the fork server" if forked else "interpreter start (the fallback)"
    return Row(
        "3 latency",
        f"supervise() {how}, supervisor up and program started, vs Popen of `true`: "
        f"median (p99) of {len(supervised)}",
        f"{1000 * a:.1f} ms ({1000 * p99:.1f})",
        f"{1000 * b:.2f} ms",
        ratio(a, b),
        *(("p50 <= 3 ms", met(a <= 0.003)) if forked else ()),
    )


def _latency_rows(
    submitted: Sequence[float],
    direct: Sequence[float],
    launched: Sequence[float],
    plain: Sequence[float],
    rss_mib: float,
) -> list[Row]:
    ours_p = latency.Percentiles.of(submitted)
    direct_p = latency.Percentiles.of(direct)
    runs = len(submitted)
    rows = [
        Row(
            "3 latency",
            f"submit -> first line, idle worker, {name} of {runs}",
            f"{1000 * a:.1f} ms",
            f"{1000 * b:.1f} ms (Popen)",
            ratio(a, b),
        )
        for name, a, b in (
            ("p50", ours_p.p50, direct_p.p50),
            ("p99", ours_p.p99, direct_p.p99),
        )
    ]
    for name, overhead, limit in (
        ("p50", ours_p.p50 - direct_p.p50, 15),
        ("p99", ours_p.p99 - direct_p.p99, 50),
    ):
        rows.append(
            Row(
                "3 latency",
                f"overhead (FGLab - Popen), {name}",
                f"{1000 * overhead:.1f} ms",
                "",
                "",
                f"< {limit} ms",
                met(1000 * overhead < limit),
            )
        )
    a, b = statistics.median(launched), statistics.median(plain)
    rows.append(
        Row(
            "3 latency",
            f"launch() vs Popen of `true`, median of {len(launched)} "
            f"(in a process of {rss_mib:.0f} MiB)",
            f"{1e6 * a:.0f} us",
            f"{1e6 * b:.0f} us",
            ratio(a, b),
            "<= 2x",
            met(a <= 2 * b),
        )
    )
    return rows


def _stage_rows(stages: Mapping[str, Sequence[float]]) -> list[Row]:
    """Where FGLab's submit -> start goes, stage by stage (medians; the record's clocks)."""
    return [
        Row("3 latency", f"  {name}, p50", f"{1000 * statistics.median(values):.1f} ms", "", "")
        for name, values in stages.items()
        if values
    ]


# --- 4: growth ------------------------------------------------------------------------------


def dispatch_growth(services: Services, sizes: Sizes, report: Report) -> None:
    """Dispatch passes over 1, 10, 100(, 1000) queued experiments; baseline: 1 queued."""
    passes = []
    for queued in sizes.queue_lengths:
        logger.info("dispatch: %d queued", queued)
        passes.append(growth.dispatch_passes(services, queued, sizes.dispatch_repeats))
    report.raw["dispatch"] = [
        {"queued": p.queued, "placed": p.placed, "seconds": p.seconds, **_raw_counts(p.counts)}
        for pair in passes
        for p in pair
    ]
    first_one, first_all = passes[0]
    for one, _ in passes:
        report.rows.append(
            Row(
                "4 growth",
                f"dispatch pass placing 1 of {one.queued} queued",
                f"{1000 * one.seconds:.1f} ms, {_ops(one.counts)}",
                f"{1000 * first_one.seconds:.1f} ms at {first_one.queued}",
                ratio(one.seconds, first_one.seconds),
            )
        )
    base = first_all.seconds / first_all.placed
    for _, every in passes:
        each = every.seconds / max(1, every.placed)
        report.rows.append(
            Row(
                "4 growth",
                f"dispatch pass placing all {every.queued}, per experiment",
                f"{1000 * each:.2f} ms, {_ops(every.counts, every.placed)}",
                f"{1000 * base:.2f} ms at {first_all.queued}",
                ratio(each, base),
            )
        )
        if every.placed != every.queued:
            report.notes.append(f"dispatch: a pass over {every.queued} placed {every.placed}")


def _ops(counts: Counts, per: int = 1) -> str:
    mongo = sum(counts.mongo.values()) / max(1, per)
    redis = sum(counts.redis.values()) / max(1, per)
    unit = "" if per == 1 else "/exp"
    return f"{mongo:.1f} Mongo ops{unit}, {redis:.1f} Redis cmds{unit}"


def fleet_growth(services: Services, sizes: Sizes, report: Report) -> None:
    """Throughput with 1, 2(, 3) machine workers; baseline: one worker."""
    n = sizes.fleet_experiments
    drains: list[tuple[int, Drain]] = []
    for machines in sizes.fleet_machines:
        logger.info("fleet: %d experiments over %d machine worker(s)", n, machines)
        with ours(services, f"fleet{machines}") as fglab:
            drains.append((machines, _drain(fglab, machines, n)))
    report.raw["fleet"] = {str(machines): _raw(drain) for machines, drain in drains}
    first_machines, first = drains[0]
    for machines, drain in drains:
        report.rows.append(
            Row(
                "4 growth",
                f"{n} experiments over {machines} machine worker(s)",
                f"{drain.per_second:.1f}/s ({drain.drain_s:.1f} s)",
                f"{first.per_second:.1f}/s with {first_machines}",
                ratio(drain.per_second, first.per_second),
            )
        )
        if not _all_once(drain):
            report.notes.append(f"fleet of {machines}: {drain.describe_runs()}")


def _drain(fglab: Ours, machines: int, experiments: int) -> Drain:
    project_id = fglab.store.projects.create("bench-fleet", {})
    launches = fglab.root / "launches.txt"
    fglab.start(machines, {str(project_id): implementation(fglab.root, load_args(launches))})
    return fglab.load(project_id, experiments, launches)


# --- 5: the store at scale (another engineer's tool) ----------------------------------------

#: A row of bench_store_scale.py's final table: operation engine code size median ratio.
_STORE_ROW = re.compile(
    r"^(?P<operation>\w+)\s+(?P<engine>\w+)\s+(?P<code>\w+)\s+(?P<size>[\d,]+)\s+"
    r"(?P<ms>[\d.]+)\s+(?P<ratio>[\d.]+)x\s*$"
)


def store_scale(services: Services, sizes: Sizes, report: Report) -> None:
    """Run ``bench/bench_store_scale.py`` with sizes of its own; its rows join the table.

    Its baseline is the same operation at its smallest size. When its table does not
    parse (it is another engineer's, and may change), its output is kept verbatim.
    """
    if not STORE_SCALE.exists():
        report.notes.append("bench/bench_store_scale.py is not there: store scale left out")
        return
    command = [sys.executable, str(STORE_SCALE), *sizes.store_scale_args]
    logger.info("store scale: %s", " ".join(command[1:]))
    log = services.root / "store-scale.log"
    code = run_group(command, log, sizes.store_scale_timeout, cwd=REPO)
    output = log.read_text(errors="replace")
    rows = parse_store_scale(output)
    report.rows += rows
    if code != 0 or not rows:
        heading = f"bench/bench_store_scale.py {' '.join(sizes.store_scale_args)} (exit {code})"
        report.appendix.append((heading, output))
    if code != 0:
        raise RuntimeError(f"bench_store_scale.py exited with {code}; its output is kept below")


def parse_store_scale(output: str) -> list[Row]:
    """Rows of the table bench_store_scale.py prints last; [] when there is none."""
    found: list[dict[str, Any]] = []
    for line in output.splitlines():
        match = _STORE_ROW.match(line.strip())
        if match:
            found.append(match.groupdict())
    smallest: dict[tuple[str, str, str], dict[str, Any]] = {}
    for row in found:
        key = (row["operation"], row["engine"], row["code"])
        size = int(row["size"].replace(",", ""))
        if key not in smallest or size < int(smallest[key]["size"].replace(",", "")):
            smallest[key] = row
    rows = []
    for row in found:
        first = smallest[(row["operation"], row["engine"], row["code"])]
        rows.append(
            Row(
                "5 store scale",
                f"{row['operation']} at {row['size']} docs ({row['engine']}, {row['code']})",
                f"{float(row['ms']):.2f} ms",
                f"{float(first['ms']):.2f} ms at {first['size']}",
                f"{row['ratio']}x",
                *(("<= 2x", met(float(row["ratio"]) <= 2)) if row is not first else ()),
            )
        )
    return rows


def pruning(services: Services, sizes: Sizes, report: Report) -> None:
    """``bench/bench_sweeps.py --only pruning``: the same sweep with and without median
    pruning (the same size at both sizes: it is short), its figures as rows."""
    figures_path = services.root / "pruning.json"
    command = [
        sys.executable,
        str(SWEEPS),
        "--only",
        "pruning",
        "--redis",
        services.redis_url,
        "--json",
        str(figures_path),
    ]
    logger.info("pruning: %s", " ".join(command[1:]))
    log = services.root / "pruning.log"
    code = run_group(command, log, PRUNING_TIMEOUT, cwd=REPO)
    if code != 0 or not figures_path.exists():
        report.appendix.append(
            (f"bench/bench_sweeps.py --only pruning (exit {code})", log.read_text(errors="replace"))
        )
        raise RuntimeError(f"bench_sweeps.py exited with {code}; its output is kept below")
    report.rows += pruning_rows(json.loads(figures_path.read_text()))


def pruning_rows(figures: Mapping[str, Any]) -> list[Row]:
    """The pruning comparison's rows; the baseline is the same sweep without pruning."""
    section = "6 pruning"
    last = max(figures["last_steps"], default=0)
    with_, without = figures["wall_pruned"], figures["wall_plain"]
    saved = (without - with_) / without if without else 0.0
    same = figures["best_pruned"] == figures["best_plain"]
    rows = [
        Row(
            section,
            f"{figures['trials']} trials of 20 steps, bad ones recognisable at step "
            f"{figures['recognisable_at']}: sweep wall-clock",
            f"{with_:.1f} s (median pruning)",
            f"{without:.1f} s (no pruning)",
            ratio(with_, without),
            "saves >= 35%",
            met(saved >= 0.35),
        ),
        Row(section, "  wall-clock saved", f"{saved:.0%}"),
        Row(
            section,
            "  best found",
            f"{figures['best_pruned']:.4f}",
            f"{figures['best_plain']:.4f}",
            "",
            "the same",
            met(same),
        ),
        Row(
            section,
            f"  pruned trials ({figures['pruned']}): the last step any reached",
            str(last),
            "",
            "",
            "<= 5",
            met(bool(figures["last_steps"]) and last <= 5),
        ),
    ]
    for name, values in figures["latencies"].items():
        rows.append(
            Row(
                section,
                f"  {name}, p50 (p99) over {values['n']} pruned trials",
                f"{1000 * values['p50']:.0f} ms ({1000 * values['p99']:.0f})",
                "",
                "",
                "p50 < 100 ms",
                met(values["p50"] < 0.1),
            )
        )
    return rows


SECTIONS: tuple[tuple[str, Section], ...] = (
    ("1-3 throughput, operations, latency", throughput_operations_latency),
    ("4 dispatch growth", dispatch_growth),
    ("4 fleet growth", fleet_growth),
    ("5 store scale", store_scale),
    ("6 pruning", pruning),
)
