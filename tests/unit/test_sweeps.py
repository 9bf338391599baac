"""Sweeps' decisions, without services: settings, spaces, trials, the sampler, the pruner."""

from __future__ import annotations

import math

import pytest

from fglab.sweeps import space, study
from fglab.sweeps.config import Objective, SweepConfig, SweepError, parse_sweep
from fglab.sweeps.trials import COMPLETE, FAILED, PRUNED, RUNNING, best_trial, trial_view

SCHEMA = {
    "lr": {"type": "float", "default": 0.01},
    "layers": {"type": "int", "default": 2},
    "optimiser": {"type": "enum", "default": "sgd", "values": ["sgd", "adam", "rmsprop"]},
    "tag": {"type": "string", "default": "x"},
}
GRID = {
    "lr": {"min": 0.001, "max": 1, "steps": 3, "scale": "log"},
    "layers": {"min": 1, "max": 3, "steps": 2},
    "optimiser": {"values": ["sgd", "adam"]},
}
RANGES = {
    "lr": {"min": 0.0001, "max": 0.1, "scale": "log"},
    "layers": {"min": 1, "max": 5},
    "optimiser": {"values": ["sgd", "adam"]},
}
LOSS = {"score": "loss", "goal": "minimize"}


# Settings --------------------------------------------------------------------------------


def test_grid_budget_defaults_to_the_size_of_the_grid():
    config = parse_sweep(SCHEMA, {"method": "grid", "space": GRID, "seed": 3})
    assert (config.budget, config.parallelism, config.seed, config.objective) == (12, 1, 3, None)
    assert SweepConfig.from_dict(config.to_dict()) == config


def test_a_seed_is_drawn_and_kept_when_none_is_given():
    config = parse_sweep(SCHEMA, {"method": "random", "space": RANGES, "budget": 5})
    assert isinstance(config.seed, int)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"method": "anneal"}, "^method is 'anneal'"),
        ({"method": "grid", "space": {"nope": {}}}, "^space: search spec names 'nope'"),
        ({"method": "grid", "space": {"lr": {"min": 1, "max": 0}}}, "^space: .*min 1"),
        ({"method": "grid", "space": GRID, "budget": 13}, "^budget is 13"),
        ({"method": "random", "space": RANGES}, "^budget is required"),
        ({"method": "random", "space": RANGES, "budget": 0}, "^budget is 0"),
        ({"method": "bayes", "space": RANGES, "budget": 5}, "^objective: bayes needs"),
        (
            {"method": "random", "space": RANGES, "budget": 5, "objective": {"score": ""}},
            "^objective.score is ''",
        ),
        (
            {
                "method": "random",
                "space": RANGES,
                "budget": 5,
                "objective": {"score": "loss", "goal": "up"},
            },
            "^objective.goal is 'up'",
        ),
        (
            {"method": "random", "space": RANGES, "budget": 5, "prune": {"pruner": "median"}},
            "^objective: pruning needs",
        ),
        (
            {
                "method": "random",
                "space": RANGES,
                "budget": 5,
                "objective": LOSS,
                "prune": {"pruner": "asha"},
            },
            "^prune.pruner is 'asha'",
        ),
        (
            {"method": "random", "space": RANGES, "budget": 5, "parallelism": 1.5},
            "^parallelism is 1.5",
        ),
        ({"method": "grid", "space": GRID, "seed": "1"}, "^seed is '1'"),
        ({"method": "grid", "colour": 1}, "unknown sweep setting"),
    ],
)
def test_a_bad_sweep_names_the_field(body, message):
    with pytest.raises(SweepError, match=message):
        parse_sweep(SCHEMA, body)


def test_pruner_settings_take_their_defaults():
    body = {"method": "random", "space": RANGES, "budget": 5, "objective": LOSS}
    median = parse_sweep(SCHEMA, {**body, "prune": {"pruner": "median", "n_warmup_steps": 3}})
    assert median.prune == {
        "pruner": "median", "n_startup_trials": 5, "n_warmup_steps": 3, "interval_steps": 1,
        "n_min_trials": 1,
    }  # fmt: skip
    with pytest.raises(SweepError, match=r"^prune\.max_resource is required"):
        parse_sweep(SCHEMA, {**body, "prune": {"pruner": "hyperband"}})


# Spaces ----------------------------------------------------------------------------------


def test_grid_trials_walk_the_whole_product_in_order():
    options = [space.grid_options(SCHEMA, GRID, n) for n in range(12)]
    assert {(o["lr"], o["layers"], o["optimiser"]) for o in options} == {
        (lr, layers, opt)
        for lr in (0.001, 0.01, 0.1)
        for layers in (1, 2)
        for opt in ("sgd", "adam")
    }
    assert options[0] == {"lr": 0.001, "layers": 1, "optimiser": "sgd", "tag": "x"}
    assert options[1]["optimiser"] == "adam"


def test_random_trials_stay_in_range_respect_log_scales_and_repeat_with_the_seed():
    draws = [space.random_options(SCHEMA, RANGES, 7, n) for n in range(400)]
    assert draws[:5] == [space.random_options(SCHEMA, RANGES, 7, n) for n in range(5)]
    assert draws[0] != space.random_options(SCHEMA, RANGES, 8, 0)
    assert all(0.0001 <= d["lr"] < 0.1 for d in draws)
    assert all(isinstance(d["layers"], int) and 1 <= d["layers"] <= 4 for d in draws)
    # Uniform in the exponent: about a third below 0.001, not 1%.
    below = sum(d["lr"] < 0.001 for d in draws) / len(draws)
    assert 0.2 < below < 0.47
    assert {d["optimiser"] for d in draws} == {"sgd", "adam"}
    assert {d["tag"] for d in draws} == {"x"}


def test_the_space_as_optuna_distributions_keeps_max_exclusive():
    found = space.distributions(SCHEMA, RANGES)
    assert set(found) == {"lr", "layers", "optimiser"}
    lr = found["lr"]
    assert (lr.low, lr.log) == (0.0001, True) and lr.high < 0.1
    assert (found["layers"].low, found["layers"].high) == (1, 4)
    assert space.fixed_options(SCHEMA, RANGES) == {"tag": "x"}
    with pytest.raises(SweepError, match="'layers' holds no whole number"):
        space.distributions(SCHEMA, {"layers": {"min": 1.2, "max": 1.8}})


# Trials ----------------------------------------------------------------------------------


def doc(number, status, loss=None, **extra):
    scores = {} if loss is None else {"loss": loss}
    return {"_id": f"e{number}", "_trial": number, "_status": status, "_scores": scores,
            "_options": {"x": number}, **extra}  # fmt: skip


def test_a_trial_that_finished_without_the_objective_failed_for_the_sweep():
    view = trial_view(doc(0, "success"), Objective("loss", "minimize"))
    assert view["status"] == "fail"
    assert view["reason"] == "finished without the objective score 'loss'"
    pruned = doc(1, "pruned", _exit={"reason": "pruned at step 3: loss 2 is worse"})
    assert trial_view(pruned, None)["reason"] == "pruned at step 3: loss 2 is worse"


def test_the_best_trial_follows_the_goal():
    views = [trial_view(d, Objective("loss", "minimize")) for d in (
        doc(0, "success", 0.5), doc(1, "success", 0.2), doc(2, "fail", 0.1), doc(3, "running", 0.0),
    )]  # fmt: skip
    assert best_trial(views, Objective("loss", "minimize"))["trial"] == 1
    assert best_trial(views, Objective("loss", "maximize"))["trial"] == 0
    assert best_trial([], None) is None


# The sampler -----------------------------------------------------------------------------


def branin(x, y):
    a, b, c, r, s, t = 1, 5.1 / (4 * math.pi**2), 5 / math.pi, 6, 10, 1 / (8 * math.pi)
    return a * (y - b * x**2 + c * x - r) ** 2 + s * (1 - t) * math.cos(x) + s


BRANIN_SCHEMA = {"x": {"type": "float", "default": 0.0}, "y": {"type": "float", "default": 0.0}}
BRANIN_SPACE = {"x": {"min": -5, "max": 10}, "y": {"min": 0, "max": 15}}


def config(**changes):
    base = {"method": "bayes", "space": BRANIN_SPACE, "budget": 30, "objective": LOSS, "seed": 1}
    return parse_sweep(BRANIN_SCHEMA, {**base, **changes})


def test_tpe_rebuilt_from_the_record_proposes_the_same_trial_and_learns():
    cfg = config()
    distributions = space.distributions(BRANIN_SCHEMA, BRANIN_SPACE)
    recorded: list[study.Recorded] = []
    for number in range(30):
        options = study.ask("s", cfg, distributions, recorded, number)
        assert options == study.ask("s", cfg, distributions, recorded, number)  # a rebuild
        assert -5 <= options["x"] < 10 and 0 <= options["y"] < 15
        value = branin(options["x"], options["y"])
        recorded.append(study.Recorded(number, options, COMPLETE, value))
    assert min(t.value for t in recorded[15:]) < min(t.value for t in recorded[:10])
    assert min(t.value for t in recorded) < 3.0


def test_running_and_failed_trials_are_told_without_a_value():
    cfg = config()
    distributions = space.distributions(BRANIN_SCHEMA, BRANIN_SPACE)
    recorded = [
        study.Recorded(0, {"x": 1.0, "y": 2.0}, RUNNING),
        study.Recorded(1, {"x": 2.0, "y": 3.0}, FAILED),
        study.Recorded(2, {"x": 3.0, "y": 3.0}, PRUNED, points={1: 5.0}),
    ]
    options = study.ask("s", cfg, distributions, recorded, 3)
    assert set(options) == {"x", "y"}


# The pruner ------------------------------------------------------------------------------


def curve(final, steps=30):
    return {step: final + 1.0 / step for step in range(1, steps + 1, 3)}


def test_median_prunes_a_trial_worse_than_the_median_and_says_why():
    cfg = config(prune={"pruner": "median", "n_startup_trials": 3})
    finished = [
        study.Recorded(n, {}, COMPLETE, v, curve(v))
        for n, v in enumerate([0.3, 0.2, 0.5, 0.25, 0.4, 0.35])
    ]
    bad = study.Recorded(6, {}, RUNNING, None, {step: 2.0 for step in (2, 9, 17)})
    verdict = study.judge("s", cfg, [*finished, bad], 6)
    assert verdict is not None and verdict.prune and verdict.step == 17
    # At step 17 each finished trial's value is its last one reported at or before it (16).
    median = sorted(v + 1 / 16 for v in [0.3, 0.2, 0.5, 0.25, 0.4, 0.35])
    expected = (median[2] + median[3]) / 2
    assert verdict.reason == (
        f"pruned at step 17: loss 2 is worse than the median {expected:.4g} "
        "of 6 trials at that step"
    )
    good = study.Recorded(6, {}, RUNNING, None, {17: 0.01})
    assert not study.judge("s", cfg, [*finished, good], 6).prune


def test_median_waits_for_its_startup_trials_and_warmup():
    cfg = config(prune={"pruner": "median", "n_startup_trials": 3, "n_warmup_steps": 20})
    finished = [study.Recorded(n, {}, COMPLETE, 0.1, curve(0.1)) for n in range(3)]
    bad = study.Recorded(3, {}, RUNNING, None, {10: 9.0})
    assert not study.judge("s", cfg, [*finished, bad], 3).prune
    cfg = config(prune={"pruner": "median", "n_startup_trials": 5})
    assert not study.judge("s", cfg, [*finished, bad], 3).prune
    assert study.judge("s", config(), [*finished, bad], 3) is None  # no pruner


def test_hyperband_prunes_with_the_rungs_it_noted_before():
    cfg = config(
        prune={"pruner": "hyperband", "min_resource": 1, "max_resource": 9, "reduction_factor": 3}
    )
    recorded: list[study.Recorded] = []
    verdicts = []
    for number, final in enumerate([0.1, 0.2, 0.3, 0.15, 0.25, 5.0, 6.0, 7.0, 8.0]):
        attrs: dict = {}
        points: dict[int, float] = {}
        state = COMPLETE
        for step in range(1, 10):
            points[step] = final
            trial = study.Recorded(number, {}, RUNNING, None, dict(points), attrs)
            verdict = study.judge("s", cfg, [*recorded, trial], number)
            attrs = dict(verdict.attrs)
            if verdict.prune:
                verdicts.append(verdict)
                state = PRUNED
                break
        recorded.append(
            study.Recorded(number, {}, state, final if state == COMPLETE else None, points, attrs)
        )
    assert verdicts, "hyperband pruned nothing"
    assert all(v.reason.startswith(f"pruned at step {v.step}: loss ") for v in verdicts)
    assert "hyperband bracket" in verdicts[0].reason


def test_steps_in_the_median_warmup_are_not_judged_at_all():
    """The scheduler skips reading every trial for them: the verdict could only be no."""
    cfg = config(prune={"pruner": "median", "n_startup_trials": 3, "n_warmup_steps": 5})
    finished = [study.Recorded(n, {}, COMPLETE, 0.1, curve(0.1)) for n in range(3)]
    for step, judged in ((4, False), (5, True)):
        bad = study.Recorded(3, {}, RUNNING, None, {step: 9.0})
        assert study.may_prune_at(cfg, step) is judged
        assert study.judge("s", cfg, [*finished, bad], 3).prune is judged
    assert study.may_prune_at(config(prune={"pruner": "hyperband", "max_resource": 20}), 1)
    assert not study.may_prune_at(config(), 100)


def test_ended_trials_keep_only_terminal_trials_and_drop_the_sweep_judged_longest_ago():
    from bson import ObjectId

    from fglab.sweeps.ended import EndedTrials

    ended = EndedTrials(max_sweeps=2)
    first, second, third = ObjectId(), ObjectId(), ObjectId()
    done = {"_id": ObjectId(), "_status": "success"}
    going = {"_id": ObjectId(), "_status": "running"}
    ended.keep(first, done, [{"_step": 1}])
    ended.keep(first, going, [])
    assert ended.known(first) == {done["_id"]: (done, [{"_step": 1}])}

    ended.keep(second, {"_id": ObjectId(), "_status": "fail"}, [])
    ended.known(first)  # judged again: `second` is now the one judged longest ago
    ended.keep(third, {"_id": ObjectId(), "_status": "killed"}, [])
    assert ended.known(second) == {}
    assert set(ended.known(first)) == {done["_id"]}
    assert len(ended.known(third)) == 1

    ended.forget(first)
    assert ended.known(first) == {}
