"""Runs sweeps: makes a trial when a slot frees, prunes a trial that lags, moves states.

The scheduler side calls it on experiment events (`fglab.jobs`): a trial that ended frees
its slot (:meth:`SweepDriver.advance`), a trial that reported a new step is judged by
the pruner (:meth:`SweepDriver.judge`); beat's periodic pass advances every unsettled
sweep, so a lost event costs a heartbeat, not a trial. Every decision reads MongoDB
afresh (but for the ended trials a judgement keeps, `fglab.sweeps.ended`: they never
change) and every write is a compare-and-set (`fglab.sweeps.record`), so a restarted
scheduler, or two at once, go on where the record says.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Mapping
from typing import Any

from bson import ObjectId

from fglab.errors import Conflict, NotFound
from fglab.scheduler import Scheduler
from fglab.schema import validate_options
from fglab.sweeps import space, study
from fglab.sweeps.config import SweepConfig, parse_sweep
from fglab.sweeps.ended import EndedTrials
from fglab.sweeps.record import MOVES
from fglab.sweeps.trials import optuna_state, sweep_view, trial_view
from tasks.states import ON_MACHINE, TERMINAL

logger = logging.getLogger(__name__)

#: Passes one advance makes at most (each claims a slot or finds none; a lost
#: compare-and-set costs one).
MAX_PASSES = 200


class SweepDriver:
    def __init__(self, scheduler: Scheduler, ended: EndedTrials | None = None) -> None:
        self.scheduler = scheduler
        self.store = scheduler.store
        #: Ended trials already read (the scheduler's, across judgements); None: none kept.
        self.ended = ended

    # Creating and reading -------------------------------------------------------------

    def create(self, project: Mapping[str, Any], body: Mapping[str, Any]) -> dict[str, Any]:
        """Check the body (SweepError names the field), store the sweep, make its first
        trials; returns the sweep's view."""
        config = parse_sweep(project["schema"], body)
        if config.method == "bayes":
            space.distributions(project["schema"], config.space)  # an empty int range fails
        sweep = self.store.sweeps.insert(project["_id"], config)
        self.advance(sweep["_id"])
        return self.view(sweep["_id"])

    def view(self, sweep_id: ObjectId) -> dict[str, Any]:
        return sweep_view(self._get(sweep_id), self.store.sweep_trials(sweep_id))

    def _get(self, sweep_id: ObjectId) -> dict[str, Any]:
        sweep = self.store.sweeps.get(sweep_id)
        if sweep is None:
            raise NotFound(f"Sweep ID {sweep_id} does not exist")
        return sweep

    # Making trials ---------------------------------------------------------------------

    def advance(self, sweep_id: ObjectId) -> int:
        """Free the slots of ended trials, make trials while there is room, finish the
        sweep when its budget is spent; returns how many trials were made (queued)."""
        made = 0
        for _ in range(MAX_PASSES):
            sweep = self.store.sweeps.get(sweep_id)
            if sweep is None:
                return made
            trials = self.store.sweep_trials(sweep_id)
            by_id = {doc["_id"]: doc for doc in trials}
            ended = [
                claim["trial"]
                for claim in sweep["open"]
                if claim["experiment"] in by_id
                and by_id[claim["experiment"]]["_status"] in TERMINAL
            ]
            if ended:
                self.store.sweeps.close(sweep_id, ended)
                continue
            project = self.store.projects.lookup(sweep["project"])
            if project is None:
                return made
            # A claim whose experiment is missing: its maker stopped in between.
            missing = [claim for claim in sweep["open"] if claim["experiment"] not in by_id]
            for claim in missing:
                made += self._make(project, sweep, trials, claim)
            if missing:
                continue
            claim = self.store.sweeps.claim(sweep)
            if claim is not None:
                made += self._make(project, sweep, trials, claim)
                continue
            if not _has_room(sweep):
                if self.store.sweeps.finish_if_done(sweep):
                    logger.info("sweep %s finished", sweep_id)
                return made
            # Room, but the claim lost to another pass: read again.
        logger.warning("sweep %s: gave up advancing after %d passes", sweep_id, MAX_PASSES)
        return made

    def trial_ended(self, experiment_id: ObjectId) -> int:
        """An experiment ended: when it was a sweep's trial, its slot goes to the next
        trial now. Returns how many trials were made."""
        try:
            doc = self.store.get_experiment(experiment_id, ["_sweep"])
        except NotFound:
            return 0
        return 0 if doc.get("_sweep") is None else self.advance(doc["_sweep"])

    def advance_all(self) -> int:
        """Advance every sweep that is running or waits for a trial (beat's pass)."""
        return sum(self.advance(sweep_id) for sweep_id in self.store.sweeps.unsettled())

    def _make(
        self,
        project: Mapping[str, Any],
        sweep: Mapping[str, Any],
        trials: list[dict[str, Any]],
        claim: Mapping[str, Any],
    ) -> int:
        """Store the claimed trial's experiment; 1 when this pass made it."""
        number = claim["trial"]
        options = validate_options(project["schema"], self._options(project, sweep, trials, number))
        made = self.store.new_trial(
            project["_id"],
            options,
            claim["experiment"],
            sweep["_id"],
            number,
            priority=int(sweep.get("priority") or 0),
            tags=list(sweep.get("tags") or ()),
        )
        if made:
            logger.info(
                "sweep %s: trial %d queued as %s", sweep["_id"], number, claim["experiment"]
            )
        return int(made)

    def _options(
        self,
        project: Mapping[str, Any],
        sweep: Mapping[str, Any],
        trials: list[dict[str, Any]],
        number: int,
    ) -> dict[str, Any]:
        config = SweepConfig.from_dict(sweep)
        schema = project["schema"]
        if config.method == "grid":
            return space.grid_options(schema, config.space, number)
        if config.method == "random":
            return space.random_options(schema, config.space, config.seed, number)
        recorded = self._recorded(sweep, trials)
        distributions = space.distributions(schema, config.space)
        proposed = study.ask(str(sweep["_id"]), config, distributions, recorded, number)
        return {**space.fixed_options(schema, config.space), **proposed}

    # Pruning ---------------------------------------------------------------------------

    def judge(self, experiment_id: ObjectId, step: int | None = None) -> bool:
        """Ask the sweep's pruner about a trial's last reported step (`step`, when the
        worker said which); stop the trial when it says so. True when it is being pruned."""
        try:
            doc = self.store.get_experiment(
                experiment_id, ["_sweep", "_trial", "_status", "_prune"]
            )
        except NotFound:
            return False
        running = doc["_status"] in ON_MACHINE
        if doc.get("_sweep") is None or not running or doc.get("_prune"):
            return False
        sweep = self.store.sweeps.get(doc["_sweep"])
        if sweep is None or not sweep.get("prune"):
            return False
        config = SweepConfig.from_dict(sweep)
        if step is not None and not study.may_prune_at(config, step):
            return False  # in the warm-up: no need to read every trial
        recorded = self._judged_trials(sweep)
        verdict = study.judge(str(sweep["_id"]), config, recorded, doc["_trial"])
        if verdict is None:
            return False
        self.store.sweeps.note_pruner(sweep["_id"], doc["_trial"], verdict.attrs)
        if not verdict.prune or verdict.reason is None:
            return False
        logger.info("sweep %s: trial %d %s", sweep["_id"], doc["_trial"], verdict.reason)
        return self.scheduler.prune(experiment_id, verdict.reason, verdict.step)

    def _judged_trials(self, sweep: Mapping[str, Any]) -> list[study.Recorded]:
        """Every trial of the sweep with its history; the ended ones `self.ended` holds
        are not read again."""
        sweep_id = sweep["_id"]
        ended = self.ended.known(sweep_id) if self.ended is not None else {}
        fresh = self.store.sweep_trials(sweep_id, excluding=list(ended))
        histories = self.store.histories([doc["_id"] for doc in fresh])
        for doc in fresh:
            if self.ended is not None:
                self.ended.keep(sweep_id, doc, histories.get(doc["_id"], []))
        histories.update((key, points) for key, (_, points) in ended.items())
        trials = sorted([doc for doc, _ in ended.values()] + fresh, key=lambda d: d["_trial"])
        return self._recorded(sweep, trials, histories=histories)

    def _recorded(
        self,
        sweep: Mapping[str, Any],
        trials: list[dict[str, Any]],
        *,
        histories: Mapping[ObjectId, list[dict[str, Any]]] | None = None,
    ) -> list[study.Recorded]:
        """The trials as the study sees them; their points from `histories`, if given."""
        config = SweepConfig.from_dict(sweep)
        histories = histories or {}
        attrs = sweep.get("pruner_attrs") or {}
        recorded = []
        for doc in trials:
            view = trial_view(doc, config.objective)
            recorded.append(
                study.Recorded(
                    number=doc["_trial"],
                    options=doc.get("_options", {}),
                    state=optuna_state(view),
                    value=view["objective"],
                    points=_objective_points(histories.get(doc["_id"], []), config),
                    attrs=attrs.get(str(doc["_trial"]), {}),
                )
            )
        return recorded

    # State moves -----------------------------------------------------------------------

    def pause(self, sweep_id: ObjectId) -> dict[str, Any]:
        """Make no new trials; the running ones finish."""
        self._move(sweep_id, "pause")
        return self.view(sweep_id)

    def resume(self, sweep_id: ObjectId) -> dict[str, Any]:
        """Go on making trials (returns after queueing the ones there is room for)."""
        self._move(sweep_id, "resume")
        self.advance(sweep_id)
        return self.view(sweep_id)

    def cancel(self, sweep_id: ObjectId) -> dict[str, Any]:
        """Make no new trials, cancel the queued ones and kill the running ones."""
        self._move(sweep_id, "cancel")
        for doc in self.store.sweep_trials(sweep_id):
            if doc["_status"] not in TERMINAL:
                with contextlib.suppress(Conflict):  # it ended meanwhile
                    self.scheduler.cancel(doc["_id"])
        return self.view(sweep_id)

    def _move(self, sweep_id: ObjectId, move: str) -> None:
        sweep = self._get(sweep_id)
        if self.store.sweeps.move(sweep_id, move) is None:
            sources = " or ".join(MOVES[move][0])
            raise Conflict(
                f"Sweep {sweep_id} is {sweep['state']}; only a {sources} sweep can {move}"
            )


def _has_room(sweep: Mapping[str, Any]) -> bool:
    return (
        sweep["state"] == "running"
        and sweep["next_trial"] < sweep["budget"]
        and len(sweep["open"]) < sweep["parallelism"]
    )


def _objective_points(points: list[dict[str, Any]], config: SweepConfig) -> dict[int, float]:
    """The objective's value at each reported step (points without it left out)."""
    if config.objective is None:
        return {}
    found: dict[int, float] = {}
    for point in points:
        value = (point.get("scores") or {}).get(config.objective.score)
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            found[int(point["step"])] = float(value)
    return found
