"""Optuna, rebuilt from the recorded trials for each decision: the next bayes trial, and
whether a running trial is pruned.

MongoDB is the source of truth: nothing of Optuna outlives one call. Each decision builds
an in-memory study from the trials as recorded (options, state, objective, reported
points, what the pruner noted), so a restarted scheduler, or a second one, decides from
the same facts. The sampler is seeded with the sweep's seed plus the trial number, so
asking again for the same trial over the same record proposes the same options.

A program's points may be sampled (a worker syncs a JSON result as it is written, at most
once each 20 ms, so a program that rewrites it faster skips steps), so two trials need
not report the same steps. A trial's value at a step is therefore the last one
it reported at or before that step, for steps up to its last report.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.pruners import BasePruner, HyperbandPruner, MedianPruner, NopPruner
from optuna.trial import FrozenTrial, TrialState, create_trial

from fglab.sweeps.config import Objective, SweepConfig
from fglab.sweeps.trials import COMPLETE, FAILED, PRUNED, RUNNING

__all__ = ["Recorded", "Verdict", "ask", "judge", "may_prune_at"]

_STATES = {
    COMPLETE: TrialState.COMPLETE,
    PRUNED: TrialState.PRUNED,
    FAILED: TrialState.FAIL,
    RUNNING: TrialState.RUNNING,
}


@dataclass(frozen=True)
class Recorded:
    """One trial as MongoDB holds it."""

    number: int
    options: Mapping[str, Any]
    state: str  # trials.COMPLETE, PRUNED, FAILED or RUNNING
    value: float | None = None
    #: The objective as reported while it ran: step -> value.
    points: Mapping[int, float] = field(default_factory=dict)
    #: What the pruner noted on this trial (hyperband's rung results).
    attrs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Verdict:
    prune: bool
    step: int
    reason: str | None = None
    #: What the pruner noted on the judged trial; kept for the next rebuild.
    attrs: Mapping[str, Any] = field(default_factory=dict)


def ask(
    sweep_name: str,
    config: SweepConfig,
    space: Mapping[str, BaseDistribution],
    trials: Sequence[Recorded],
    number: int,
) -> dict[str, Any]:
    """The options TPE proposes for trial `number`, given every recorded trial.

    Running trials are told as running, so parallel trials are not proposed twice
    (constant liar).
    """
    sampler = optuna.samplers.TPESampler(seed=config.seed + number, constant_liar=True)
    study = _study(sweep_name, config, sampler, NopPruner())
    for trial in trials:
        params = {name: trial.options[name] for name in space if name in trial.options}
        frozen = _frozen(trial, params, space)
        if frozen is not None:
            study.add_trial(frozen)
    return dict(study.ask(dict(space)).params)


def judge(
    sweep_name: str, config: SweepConfig, trials: Sequence[Recorded], number: int
) -> Verdict | None:
    """Whether the sweep's pruner stops trial `number` at its last reported step, and why.

    None when the trial reported nothing yet or the sweep does not prune.
    """
    assert config.objective is not None or config.prune is None
    judged = next((t for t in trials if t.number == number), None)
    if config.prune is None or config.objective is None or judged is None or not judged.points:
        return None
    step = max(judged.points)
    study = _study(sweep_name, config, optuna.samplers.RandomSampler(), _pruner(config.prune))
    index = 0
    for trial in trials:
        points = dict(trial.points) if trial is judged else _aligned(trial.points, step)
        frozen = _frozen(
            Recorded(trial.number, {}, trial.state, trial.value, points, trial.attrs), {}, {}
        )
        if frozen is not None:
            if trial is judged:
                index = len(study.trials)
            study.add_trial(frozen)
    pruned = study.pruner.prune(study, study.trials[index])
    # The pruner notes its rungs on the stored trial; read them back to keep them.
    attrs = dict(study.trials[index].system_attrs)
    if not pruned:
        return Verdict(False, step, attrs=attrs)
    reason = _reason(config, trials, judged, step)
    return Verdict(True, step, reason, attrs)


def _study(
    name: str, config: SweepConfig, sampler: optuna.samplers.BaseSampler, pruner: BasePruner
) -> optuna.Study:
    maximize = config.objective is not None and config.objective.maximize
    return optuna.create_study(
        study_name=name,
        direction="maximize" if maximize else "minimize",
        sampler=sampler,
        pruner=pruner,
    )


def _frozen(
    trial: Recorded, params: Mapping[str, Any], space: Mapping[str, BaseDistribution]
) -> FrozenTrial | None:
    """The trial as Optuna's record, or None when its options lie outside the space
    (a sweep whose options were typed in by hand: it is left out, not guessed at)."""
    state = _STATES[trial.state]
    try:
        return create_trial(
            state=state,
            value=trial.value if state == TrialState.COMPLETE else None,
            params=dict(params),
            distributions={name: space[name] for name in params},
            intermediate_values={int(s): float(v) for s, v in trial.points.items()},
            system_attrs=dict(trial.attrs),
        )
    except ValueError:
        return None


def _aligned(points: Mapping[int, float], step: int) -> dict[int, float]:
    """A trial's points, plus its value at `step` when it ran that far: the last one it
    reported at or before `step`."""
    aligned = dict(points)
    earlier = [s for s in points if s <= step]
    if step not in points and earlier and max(points) >= step:
        aligned[step] = points[max(earlier)]
    return aligned


def may_prune_at(config: SweepConfig, step: int) -> bool:
    """Whether the sweep's pruner could stop a trial at `step` at all: the median pruner
    never does before its warm-up ends (``step < n_warmup_steps``, as Optuna counts), so
    those steps need no reading of the trials."""
    if config.prune is None:
        return False
    if config.prune["pruner"] == "median":
        return step >= int(config.prune.get("n_warmup_steps") or 0)
    return True


def _pruner(settings: Mapping[str, Any]) -> BasePruner:
    options = {key: value for key, value in settings.items() if key != "pruner"}
    if settings["pruner"] == "median":
        return MedianPruner(**options)
    return HyperbandPruner(**options)


def _reason(config: SweepConfig, trials: Sequence[Recorded], judged: Recorded, step: int) -> str:
    objective = config.objective
    assert objective is not None and config.prune is not None
    value = judged.points[step]
    head = f"pruned at step {step}: {objective.score} {value:.4g}"
    if config.prune["pruner"] == "median":
        others = [
            _aligned(t.points, step).get(step)
            for t in trials
            if t.state == COMPLETE and t is not judged
        ]
        seen = [v for v in others if v is not None]
        if seen:
            median = statistics.median(seen)
            return (
                f"{head} is worse than the median {median:.4g} of {len(seen)} "
                f"trial{'s' if len(seen) != 1 else ''} at that step"
            )
        return f"{head} is worse than the median of the finished trials at that step"
    return (
        f"{head} is not among the best 1/{config.prune['reduction_factor']} of its "
        f"hyperband bracket at that rung ({_direction(objective)} is better)"
    )


def _direction(objective: Objective) -> str:
    return "higher" if objective.maximize else "lower"
