"""The client's commands of ``fglab``: submit, ls, show, logs, kill, rerun, sweep, export.

Each prints a human-readable table or summary, or JSON with ``--json`` (one document on
stdout that ``json.loads`` reads). A refusal is one line on stderr, ``fglab: <why>``,
and nothing is changed. Exit codes: 0 done; 1 FGLab refused or did not answer; 2 bad
usage or input (a server's 400 included); 3 a waited experiment ended other than success.
"""

from __future__ import annotations

import argparse
import codecs
import json
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from fglab.client.client import Client
from fglab.client.errors import BadRequest, FGLabError
from fglab.client.objects import Experiment, LogEntry
from fglab.client.records import parse_objective

#: Exit codes.
OK, API_ERROR, USAGE, NOT_SUCCESS = 0, 1, 2, 3
#: Seconds between status polls while the CLI waits.
POLL = 0.5

Handler = Callable[[argparse.Namespace], int]


class UsageError(ValueError):
    """Input the CLI refuses before asking FGLab (exit 2)."""


def add_commands(commands: Any) -> None:
    """Register the client's commands on ``fglab``'s subparsers."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", help="FGLab's URL (default FGLAB_URL, else http://127.0.0.1:5080)")
    common.add_argument("--token", help="API token (default FGLAB_TOKEN)")
    as_json = argparse.ArgumentParser(add_help=False)
    as_json.add_argument("--json", action="store_true", help="print JSON for scripts")
    both = [common, as_json]

    def command(name: str, handler: Handler, help: str, parents: list[Any] = both) -> Any:
        parser = commands.add_parser(name, help=help, parents=parents)
        parser.set_defaults(func=_guarded(handler))
        return parser

    command("projects", _projects, "list projects")

    submit = command("submit", _submit, "submit an experiment")
    submit.add_argument("project", help="project name or ID")
    submit.add_argument(
        "-o", "--option", action="append", default=[], metavar="NAME=VALUE",
        help="an option (repeat); VALUE is read as JSON when it is JSON, else as text; "
        "options left out take the schema's defaults",
    )  # fmt: skip
    submit.add_argument("--priority", type=int, help="higher leaves the queue first")
    submit.add_argument("--timeout", type=float, help="wall-clock limit in seconds")
    submit.add_argument("--tag", action="append", default=[], help="a tag (repeat)")
    _add_waiting(submit)

    ls = command("ls", _ls, "list a project's experiments")
    ls.add_argument("project", help="project name or ID")
    _add_query(ls)
    ls.add_argument("--limit", type=int, default=50, help="most rows to show (default 50)")

    show = command("show", _show, "show one experiment")
    show.add_argument("id", help="experiment ID")

    logs = command("logs", _logs, "print an experiment's output")
    logs.add_argument("id", help="experiment ID")
    logs.add_argument("-f", "--follow", action="store_true", help="follow until the run ends")

    kill = command("kill", _kill, "cancel a waiting experiment or kill a running one")
    kill.add_argument("id", help="experiment ID")

    rerun = command("rerun", _rerun, "submit an experiment again with the same options")
    rerun.add_argument("id", help="experiment ID")
    _add_waiting(rerun)

    export = command("export", _export, "print a project's experiments as CSV or JSON", [common])
    export.add_argument("project", help="project name or ID")
    formats = export.add_mutually_exclusive_group(required=True)
    formats.add_argument("--csv", action="store_const", const="csv", dest="format")
    formats.add_argument("--json", action="store_const", const="json", dest="format")
    _add_query(export)

    sweep = commands.add_parser("sweep", help="start or show a sweep")
    sweeps = sweep.add_subparsers(dest="sweep_command", required=True)
    create = sweeps.add_parser("create", help="start a sweep", parents=both)
    create.set_defaults(func=_guarded(_sweep_create))
    create.add_argument("project", help="project name or ID")
    create.add_argument("--method", required=True, choices=["grid", "random", "bayes"])
    create.add_argument("--space", required=True, type=Path, help="a JSON file: the space")
    create.add_argument("--objective", help="<score>:min or <score>:max, e.g. loss:min")
    create.add_argument("--budget", type=int, help="how many trials")
    create.add_argument("--parallelism", type=int, help="trials at once (default 1)")
    create.add_argument("--seed", type=int)
    create.add_argument("--priority", type=int)
    create.add_argument("--tag", action="append", default=[], help="every trial's tag (repeat)")
    show_sweep = sweeps.add_parser("show", help="show a sweep and its trials", parents=both)
    show_sweep.set_defaults(func=_guarded(_sweep_show))
    show_sweep.add_argument("id", help="sweep ID")


def _add_waiting(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--wait", action="store_true", help="wait until it ends")
    parser.add_argument("--follow", action="store_true", help="print its output until it ends")


def _add_query(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--status", action="append", help="only this status (repeat)")
    parser.add_argument(
        "--filter", action="append", help="a condition such as '_scores.loss<0.5' (repeat)"
    )
    parser.add_argument("--tag", action="append", help="only with this tag (repeat)")
    parser.add_argument("--sort", help="_created (default), _scores.<name>, _options.<name>...")
    parser.add_argument("--desc", action="store_true", help="sort descending")


def _guarded(handler: Handler) -> Handler:
    """Run `handler`, turning a refusal into one line on stderr and its exit code."""

    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except UsageError as e:
            _fail(str(e))
            return USAGE
        except BadRequest as e:
            _fail(e.message)
            return USAGE
        except FGLabError as e:
            _fail(e.message)
            return API_ERROR

    return run


def _fail(message: str) -> None:
    print(f"fglab: {message}", file=sys.stderr)


def _client(args: argparse.Namespace) -> Client:
    return Client(args.url, args.token)


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, default=str))


# Options -------------------------------------------------------------------------------


def split_options(texts: Iterable[str]) -> list[tuple[str, str]]:
    """``NAME=VALUE`` texts as (name, text) pairs, checked before anything is sent.

    Raises UsageError quoting a text without ``=`` or a name.
    """
    pairs = []
    for text in texts:
        name, equals, raw = text.partition("=")
        if not equals or not name.strip():
            raise UsageError(f"option {text!r} is not NAME=VALUE; write e.g. -o lr=0.1")
        pairs.append((name.strip(), raw))
    return pairs


def typed_options(pairs: Iterable[tuple[str, str]], schema: Mapping[str, Any]) -> dict[str, Any]:
    """Option values read as JSON when they are JSON, else kept as text, and always kept
    as text for a string option (so ``-o run=007`` stays "007"). FGLab checks the rest."""
    options: dict[str, Any] = {}
    for name, raw in pairs:
        spec = schema.get(name) or {}
        options[name] = raw if spec.get("type") == "string" else _json_or_text(raw, spec)
    return options


def _json_or_text(raw: str, spec: Mapping[str, Any]) -> Any:
    try:
        value = json.loads(raw)
    except ValueError:
        return raw
    # An enum's values may be text that reads as JSON ("1e-3", "true").
    if (
        spec.get("type") == "enum"
        and value not in spec.get("values", [])
        and raw in spec.get("values", [])
    ):
        return raw
    return value


# Commands ------------------------------------------------------------------------------


def _projects(args: argparse.Namespace) -> int:
    projects = _client(args).projects()
    if args.json:
        _print_json(projects)
        return OK
    rows = [[p.get("name"), p["_id"], ", ".join(p.get("schema") or {})] for p in projects]
    print(table(["NAME", "ID", "OPTIONS"], rows))
    return OK


def _submit(args: argparse.Namespace) -> int:
    pairs = split_options(args.option)
    client = _client(args)
    project = client.project(args.project)
    options = typed_options(pairs, project.get("schema") or {})
    experiment = client.submit(project, options, args.priority, args.timeout, args.tag)
    if not args.json:
        print(f"submitted {experiment.id} to {project['name']} ({experiment.status})")
    return _finish(experiment, args)


def _rerun(args: argparse.Namespace) -> int:
    experiment = _client(args).experiment(args.id).rerun()
    if not args.json:
        print(f"rerun of {args.id}: {experiment.id} ({experiment.status})")
    return _finish(experiment, args)


def _finish(experiment: Experiment, args: argparse.Namespace) -> int:
    """Follow or wait when asked, print the outcome; NOT_SUCCESS unless it succeeded."""
    if args.follow:
        for entry in experiment.logs(follow=True):
            _write_entry(entry, to_stderr=args.json)
    if args.follow or args.wait:
        _wait_with_progress(experiment)
    if args.json:
        _print_json(experiment.doc)
    elif args.follow or args.wait:
        print(_outcome(experiment.doc))
    if (args.follow or args.wait) and not experiment.succeeded:
        return NOT_SUCCESS
    return OK


def _wait_with_progress(experiment: Experiment) -> None:
    """Wait with a progress line on stderr (tqdm; shown only on a terminal)."""
    from tqdm import tqdm

    with tqdm(
        desc=f"{experiment.id} {experiment.status}",
        bar_format="{desc} [{elapsed}]",
        file=sys.stderr,
        leave=False,
        disable=None,
    ) as bar:
        experiment.wait(poll=POLL, progress=lambda e: bar.set_description_str(f"{e.id} {e.status}"))


def _ls(args: argparse.Namespace) -> int:
    if args.limit < 1:
        raise UsageError(f"--limit is {args.limit}; use a whole number from 1")
    query = _client(args).experiments(
        args.project, args.status, args.filter, args.sort, args.desc, args.tag, args.limit
    )
    records = query.to_records()
    if args.json:
        _print_json(records)
        return OK
    options = _keys(records, "options.")
    scores = _keys(records, "scores.")
    headers = ["ID", "STATUS", *(k.removeprefix("options.") for k in options)]
    headers += [*(k.removeprefix("scores.") for k in scores), "CREATED"]
    rows = [
        [r["_id"], r["status"], *(r.get(k) for k in options), *(r.get(k) for k in scores),
         _when(r.get("created"))]
        for r in records
    ]  # fmt: skip
    print(table(headers, rows))
    return OK


def _keys(records: Sequence[Mapping[str, Any]], prefix: str) -> list[str]:
    seen: dict[str, None] = {}
    for record in records:
        seen.update((k, None) for k in record if k.startswith(prefix))
    return list(seen)


def _show(args: argparse.Namespace) -> int:
    doc = _client(args).experiment(args.id).doc
    if args.json:
        _print_json(doc)
        return OK
    exit_ = doc.get("_exit") or {}
    lines = [
        ("experiment", doc["_id"]),
        ("project", doc.get("_project_id")),
        ("status", doc.get("_status")),
        ("reason", (exit_.get("reason") or "").split("\n", 1)[0] or None),
        ("machine", doc.get("_machine_id")),
        ("created", _when(doc.get("_created"))),
        ("started", _when(doc.get("_started"))),
        ("finished", _when(doc.get("_finished"))),
        ("duration", _duration(doc)),
        ("options", _pairs(doc.get("_options"))),
        ("scores", _pairs(doc.get("_scores"))),
        ("tags", ", ".join(doc.get("_tags") or []) or None),
        ("files", ", ".join(f.get("filename", "?") for f in doc.get("_files") or []) or None),
        ("notes", doc.get("_notes")),
    ]
    print("\n".join(f"{name:<10}  {value}" for name, value in lines if value not in (None, "")))
    return OK


def _logs(args: argparse.Namespace) -> int:
    entries = _client(args).experiment(args.id).logs(follow=args.follow)
    if args.json:
        _print_json([{"stream": e.stream, "text": e.text, "id": e.id} for e in entries])
        return OK
    for entry in entries:
        _write_entry(entry, to_stderr=False)
    return OK


def _write_entry(entry: LogEntry, to_stderr: bool) -> None:
    """The program's stdout to stdout, its stderr and FGLab's notes to stderr."""
    out = sys.stderr if to_stderr or entry.stream != "out" else sys.stdout
    out.write(entry.text)
    out.flush()


def _kill(args: argparse.Namespace) -> int:
    experiment = _client(args).experiment(args.id).kill()
    if args.json:
        _print_json(experiment.doc)
    elif experiment.ended:
        print(f"{experiment.id} {experiment.status}")
    else:
        print(f"{experiment.id}: kill requested ({experiment.status})")
    return OK


def _export(args: argparse.Namespace) -> int:
    chunks = _client(args).export(
        args.project, args.format, args.status, args.filter, args.sort, args.desc, args.tag
    )
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    for chunk in chunks:
        sys.stdout.write(decoder.decode(chunk))
    sys.stdout.write(decoder.decode(b"", final=True))
    sys.stdout.flush()
    return OK


def _sweep_create(args: argparse.Namespace) -> int:
    space = _read_json(args.space, "--space")
    try:
        objective = parse_objective(args.objective) if args.objective else None
    except ValueError as e:
        raise UsageError(str(e)) from None
    sweep = _client(args).sweep(
        args.project,
        args.method,
        space,
        objective,
        args.budget,
        args.parallelism,
        args.seed,
        priority=args.priority,
        tags=args.tag,
    )
    if args.json:
        _print_json(sweep.doc)
    else:
        doc = sweep.doc
        print(f"sweep {sweep.id}: {doc['method']}, budget {doc['budget']}, {sweep.state}")
    return OK


def _read_json(path: Path, flag: str) -> Any:
    try:
        return json.loads(path.read_text())
    except OSError as e:
        raise UsageError(f"{flag} {str(path)!r} cannot be read: {e.strerror}") from None
    except ValueError as e:
        raise UsageError(f"{flag} {str(path)!r} is not valid JSON: {e}") from None


def _sweep_show(args: argparse.Namespace) -> int:
    doc = _client(args).get_sweep(args.id).doc
    if args.json:
        _print_json(doc)
        return OK
    objective = doc.get("objective") or {}
    best = doc.get("best") or {}
    print(f"sweep {doc['_id']}: {doc['method']}, {doc['state']}, budget {doc['budget']}")
    if objective:
        print(f"objective {objective['score']} ({objective['goal']})")
    print("counts    " + (_pairs(doc.get("counts")) or "no trials yet"))
    if best:
        print(f"best      trial {best['trial']}: {_cell(best['objective'])} "
              f"({_pairs(best.get('options'))})")  # fmt: skip
    rows = [
        [t["trial"], t["experiment"], t["status"], t.get("objective"),
         _pairs(t.get("options")), t.get("reason")]
        for t in doc.get("trials") or []
    ]  # fmt: skip
    if rows:
        print()
        print(table(["TRIAL", "EXPERIMENT", "STATUS", "OBJECTIVE", "OPTIONS", "REASON"], rows))
    return OK


# Formatting ----------------------------------------------------------------------------


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """Columns padded to their widest cell; "(none)" for no rows."""
    cells = [[_cell(value) for value in row] for row in rows]
    if not cells:
        return "(none)"
    widths = [max(len(h), *(len(row[i]) for row in cells)) for i, h in enumerate(headers)]
    lines = [headers, *cells]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str)


def _pairs(mapping: Mapping[str, Any] | None) -> str:
    return " ".join(f"{k}={_cell(v)}" for k, v in (mapping or {}).items())


def _when(text: str | None) -> str | None:
    """An ISO time as ``YYYY-MM-DD HH:MM:SS`` (UTC)."""
    return text.replace("T", " ")[:19] if text else None


def _duration(doc: Mapping[str, Any]) -> str | None:
    try:
        started = datetime.fromisoformat(doc["_started"])
        finished = datetime.fromisoformat(doc["_finished"])
    except (KeyError, TypeError, ValueError):
        return None
    return f"{(finished - started).total_seconds():.1f} s"


def _outcome(doc: Mapping[str, Any]) -> str:
    """``<id> success in 3.2 s: accuracy=0.9`` (or the reason it did not succeed)."""
    text = f"{doc['_id']} {doc.get('_status')}"
    if duration := _duration(doc):
        text += f" in {duration}"
    reason = ((doc.get("_exit") or {}).get("reason") or "").split("\n", 1)[0]
    if doc.get("_status") != "success" and reason:
        text += f": {reason}"
    elif scores := _pairs(doc.get("_scores")):
        text += f": {scores}"
    return text
