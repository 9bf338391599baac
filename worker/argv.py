"""Turn an experiment's options into a program's argv, in FGMachine's four option styles.

Pure functions, no I/O: the launcher reads projects.json and the experiment, calls
:func:`build_argv` and :func:`gpu_env`, and spawns the result without a shell. Every
option name and value is its own argv item (or, in ``function`` style, a quoted literal
inside the one call item), so a value such as ``"; rm -rf ~"`` reaches the program as
data, never as shell syntax.

The experiment ID travels like any other option: the caller puts it in ``options`` as
``_id`` (FGMachine did the same), usually first, so the program finds its results folder.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence

#: FGMachine's option styles (projects.json ``options``), see :func:`build_argv`.
STYLES: tuple[str, ...] = ("plain", "single-dash", "double-dash", "function")
#: FGMachine's boolean modes (projects.json ``boolean``).
BOOLEAN_MODES: tuple[str, ...] = ("optional", "mandatory")


def build_argv(
    command: str,
    args: Sequence[str],
    options: Mapping[str, object],
    *,
    style: str,
    boolean: str,
    gpu_command: str | None = None,
    gpu: int | None = None,
) -> list[str]:
    """The argv for ``command args options``, for options ``{seed: 123, L2: true}``:

    - ``plain``: ``seed 123 L2 true``
    - ``single-dash``: ``-seed 123 -L2 true``
    - ``double-dash``: ``--seed=123 --L2=true``
    - ``function`` (MATLAB): the last of ``args`` names the function and becomes
      ``fn('seed',123,'L2',true)``; the other args stay in front of it. With no args
      there is no function to call, so this raises :class:`ValueError`.

    ``boolean="mandatory"`` always passes ``true``/``false`` as the value. With
    ``"optional"`` a true boolean passes the bare flag (``L2``, ``-L2``, ``--L2``) and a
    false one is left out; ``function`` style keeps name/value pairs either way, since a
    MATLAB name with no value would shift every pair after it.

    Values: booleans lowercase, ints as ``str``, floats in Python's shortest round-trip
    form (``0.001``, ``1e-05``), strings unchanged (in ``function`` style quoted with
    ``'``, embedded quotes doubled). Options keep the mapping's order.

    When both ``gpu_command`` and ``gpu`` are given, ``gpu_command <gpu>`` follows the
    options as two items (``gpu_command`` already carries its dashes, e.g. ``-gpu``); in
    ``function`` style the call gains ``'gpu',<gpu>`` (the name without leading dashes).

    Raises :class:`ValueError` for an unknown style or boolean mode, a ``function`` style
    without args, an empty option name, or a value that is not a string, number or bool.
    """
    if style not in STYLES:
        raise ValueError(f"option style {style!r} is unknown; use one of {_choices(STYLES)}")
    if boolean not in BOOLEAN_MODES:
        raise ValueError(
            f"boolean mode {boolean!r} is unknown; use one of {_choices(BOOLEAN_MODES)}"
        )
    gpu_flag = (gpu_command, int(gpu)) if gpu is not None and gpu_command else None

    if style == "function":
        if not args:
            raise ValueError(
                "function style needs args ending with the function name; "
                'set args in projects.json, e.g. ["-r", "train"]'
            )
        pairs = [
            f"{_matlab_string(_name(name))},{_matlab_value(name, value)}"
            for name, value in options.items()
        ]
        if gpu_flag:
            pairs.append(f"{_matlab_string(gpu_flag[0].lstrip('-'))},{gpu_flag[1]}")
        return [command, *args[:-1], f"{args[-1]}({','.join(pairs)})"]

    argv = [command, *args]
    prefix = {"plain": "", "single-dash": "-", "double-dash": "--"}[style]
    for name, value in options.items():
        flag = prefix + _name(name)
        if isinstance(value, bool) and boolean == "optional":
            if value:
                argv.append(flag)
            continue
        text = _text(name, value)
        if style == "double-dash":
            argv.append(f"{flag}={text}")
        else:
            argv += [flag, text]
    if gpu_flag:
        argv += [gpu_flag[0], str(gpu_flag[1])]
    return argv


def gpu_env(gpu: int | None) -> dict[str, str]:
    """Environment additions that pin the program to its assigned GPU (none without one).

    Set even when the project has a ``gpu_command``: frameworks that ignore the flag
    still see only their card (as card 0, which is why ``gpu_command`` gets the index).
    """
    return {} if gpu is None else {"CUDA_VISIBLE_DEVICES": str(int(gpu))}


#: FGLab's secrets in the worker's environment: a program is not given them (it could
#: read or write every experiment, or log in) unless its projects.json entry names one in
#: ``pass_env``.
SECRET_VARIABLES = frozenset({"PASSWORD", "MONGODB_URI", "REDIS_URL", "FGLAB_TOKEN"})


def program_env(environ: Mapping[str, str], passed: Collection[str] = ()) -> dict[str, str]:
    """The worker's environment without FGLab's secrets, but those `passed` by name."""
    return {k: v for k, v in environ.items() if k not in SECRET_VARIABLES or k in passed}


#: The variable that tells a program its results folder (``fglab/report.py`` reads it).
RESULTS_ENV = "FGLAB_RESULTS_DIR"


def results_env(folder: str) -> dict[str, str]:
    """Environment additions that name the run's results folder to the program, so it
    need not rebuild ``<results>/<_id>`` from projects.json."""
    return {RESULTS_ENV: folder}


def _choices(values: Sequence[str]) -> str:
    return ", ".join(repr(v) for v in values)


def _name(name: str) -> str:
    if not isinstance(name, str) or not name:
        raise ValueError(f"option name {name!r} must be a non-empty string")
    return name


def _text(name: str, value: object) -> str:
    """One value as the program reads it on its command line."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return value
    raise ValueError(
        f"option {name!r} has value {value!r} of type {type(value).__name__}; "
        "use a string, number or boolean"
    )


def _matlab_value(name: str, value: object) -> str:
    """One value as a MATLAB literal: numbers bare, strings quoted, Inf/NaN spelled MATLAB's way."""
    if isinstance(value, str):
        return _matlab_string(value)
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Inf" if value > 0 else "-Inf")
    return _text(name, value)


def _matlab_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
