"""The argv builder against FGMachine's option-style table, plus GPU and quoting cases."""

from __future__ import annotations

import pytest

from worker.argv import build_argv, gpu_env

SEED_OPTIONS = {"seed": 123, "model": "cnn.v2", "L2": True}


@pytest.mark.parametrize(
    ("style", "boolean", "expected"),
    [
        ("plain", "mandatory", ["node", "a", "seed", "123", "model", "cnn.v2", "L2", "true"]),
        ("plain", "optional", ["node", "a", "seed", "123", "model", "cnn.v2", "L2"]),
        (
            "single-dash",
            "mandatory",
            ["node", "a", "-seed", "123", "-model", "cnn.v2", "-L2", "true"],
        ),
        ("single-dash", "optional", ["node", "a", "-seed", "123", "-model", "cnn.v2", "-L2"]),
        ("double-dash", "mandatory", ["node", "a", "--seed=123", "--model=cnn.v2", "--L2=true"]),
        ("double-dash", "optional", ["node", "a", "--seed=123", "--model=cnn.v2", "--L2"]),
        ("function", "mandatory", ["node", "a('seed',123,'model','cnn.v2','L2',true)"]),
        ("function", "optional", ["node", "a('seed',123,'model','cnn.v2','L2',true)"]),
    ],
)
def test_seed_table(style: str, boolean: str, expected: list[str]) -> None:
    assert build_argv("node", ["a"], SEED_OPTIONS, style=style, boolean=boolean) == expected


@pytest.mark.parametrize(
    ("style", "boolean", "expected"),
    [
        ("plain", "mandatory", ["p", "L2", "false", "n", "1"]),
        ("plain", "optional", ["p", "n", "1"]),
        ("single-dash", "optional", ["p", "-n", "1"]),
        ("double-dash", "mandatory", ["p", "--L2=false", "--n=1"]),
        ("double-dash", "optional", ["p", "--n=1"]),
    ],
)
def test_false_boolean(style: str, boolean: str, expected: list[str]) -> None:
    options = {"L2": False, "n": 1}
    assert build_argv("p", [], options, style=style, boolean=boolean) == expected


def test_function_style_keeps_false_pairs_and_leading_args() -> None:
    argv = build_argv(
        "matlab", ["-nodisplay", "-r", "train"], {"L2": False}, style="function", boolean="optional"
    )
    assert argv == ["matlab", "-nodisplay", "-r", "train('L2',false)"]


def test_function_style_needs_args() -> None:
    with pytest.raises(ValueError, match="function style needs args ending with the function name"):
        build_argv("matlab", [], {"seed": 1}, style="function", boolean="mandatory")


def test_function_style_quotes_strings_matlab_way() -> None:
    options = {"it's": "O'Brien', 1); delete('x"}
    argv = build_argv("matlab", ["run"], options, style="function", boolean="mandatory")
    assert argv == ["matlab", "run('it''s','O''Brien'', 1); delete(''x')"]


def test_function_style_non_finite_floats() -> None:
    options = {"a": float("inf"), "b": float("-inf"), "c": float("nan"), "d": 1e-05}
    argv = build_argv("m", ["f"], options, style="function", boolean="mandatory")
    assert argv == ["m", "f('a',Inf,'b',-Inf,'c',NaN,'d',1e-05)"]


def test_value_formatting_and_order() -> None:
    options = {"_id": "55e069f9cf4e1fe075b76b95", "lr": 0.001, "eps": 1e-05, "n": -3, "x": 2.0}
    argv = build_argv("python", ["train.py"], options, style="double-dash", boolean="mandatory")
    assert argv == [
        "python",
        "train.py",
        "--_id=55e069f9cf4e1fe075b76b95",
        "--lr=0.001",
        "--eps=1e-05",
        "--n=-3",
        "--x=2.0",
    ]


@pytest.mark.parametrize("style", ["plain", "single-dash"])
def test_injection_value_is_one_item(style: str) -> None:
    evil = "; rm -rf ~ $(whoami) `id` \"'"
    argv = build_argv("python", [], {"name": evil}, style=style, boolean="mandatory")
    assert argv[-1] == evil
    assert len(argv) == 3


def test_injection_value_double_dash() -> None:
    evil = "x --other=1; rm -rf ~"
    argv = build_argv("python", [], {"name": evil}, style="double-dash", boolean="mandatory")
    assert argv == ["python", f"--name={evil}"]


@pytest.mark.parametrize(
    ("style", "expected"),
    [
        ("plain", ["th", "t.lua", "seed", "1", "-gpu", "2"]),
        ("single-dash", ["th", "t.lua", "-seed", "1", "-gpu", "2"]),
        ("double-dash", ["th", "t.lua", "--seed=1", "--gpu", "2"]),
        ("function", ["th", "t.lua('seed',1,'gpu',2)"]),
    ],
)
def test_gpu_command(style: str, expected: list[str]) -> None:
    gpu_command = "--gpu" if style == "double-dash" else "-gpu"
    argv = build_argv(
        "th",
        ["t.lua"],
        {"seed": 1},
        style=style,
        boolean="mandatory",
        gpu_command=gpu_command,
        gpu=2,
    )
    assert argv == expected


def test_gpu_index_zero_is_passed() -> None:
    argv = build_argv("p", [], {}, style="plain", boolean="mandatory", gpu_command="-gpu", gpu=0)
    assert argv == ["p", "-gpu", "0"]


@pytest.mark.parametrize(("gpu_command", "gpu"), [(None, 1), ("-gpu", None), ("", 1)])
def test_no_gpu_argument_without_both(gpu_command: str | None, gpu: int | None) -> None:
    argv = build_argv(
        "p", [], {"a": 1}, style="plain", boolean="mandatory", gpu_command=gpu_command, gpu=gpu
    )
    assert argv == ["p", "a", "1"]


def test_gpu_env() -> None:
    assert gpu_env(None) == {}
    assert gpu_env(0) == {"CUDA_VISIBLE_DEVICES": "0"}
    assert gpu_env(3) == {"CUDA_VISIBLE_DEVICES": "3"}


def test_args_are_not_mutated() -> None:
    args = ["-r", "train"]
    build_argv("matlab", args, {"a": 1}, style="function", boolean="mandatory")
    assert args == ["-r", "train"]


def test_unknown_style() -> None:
    with pytest.raises(ValueError, match="option style 'triple-dash' is unknown; use one of"):
        build_argv("p", [], {}, style="triple-dash", boolean="mandatory")


def test_unknown_boolean() -> None:
    with pytest.raises(ValueError, match="boolean mode 'sometimes' is unknown; use one of"):
        build_argv("p", [], {}, style="plain", boolean="sometimes")


def test_unsupported_value_type() -> None:
    with pytest.raises(ValueError, match=r"option 'layers' has value \[1, 2\] of type list"):
        build_argv("p", [], {"layers": [1, 2]}, style="plain", boolean="mandatory")


def test_empty_option_name() -> None:
    with pytest.raises(ValueError, match="option name '' must be a non-empty string"):
        build_argv("p", [], {"": 1}, style="plain", boolean="mandatory")
