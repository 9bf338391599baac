"""The ``fglab`` command: ``fglab up`` (everything on one host), ``fglab web``,
``fglab flower`` (Flower with FGLab's password), and the client's commands over the API
(``fglab submit``, ``ls``, ``logs``... in `fglab.client.cli`)."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import sys

from config import SettingsError, load_settings
from fglab.client.cli import add_commands

logger = logging.getLogger("fglab")

#: waitress threads for pages and API calls, on top of one per possible log stream.
PAGE_THREADS = 16


def _web(args: argparse.Namespace) -> int:
    from waitress import serve

    from fglab.app import create_app

    settings = load_settings()
    if not (settings.password or settings.allow_open or _is_loopback(settings.fglab_host)):
        print(
            f"fglab: refusing to listen on {settings.fglab_host} without a PASSWORD: anyone "
            "who can reach it could read and run experiments. Set PASSWORD, or "
            "FGLAB_HOST=127.0.0.1, or FGLAB_ALLOW_OPEN=true to serve it open anyway",
            file=sys.stderr,
        )
        return 2
    app = create_app(settings)
    _warn_if_open(settings.fglab_host, settings.password)
    logger.info(
        "FGLab on http://%s:%d (API docs at /api/docs)", settings.fglab_host, settings.fglab_port
    )
    # Every open log stream holds a thread until it ends; they are capped at
    # FGLAB_STREAMS_MAX, so that many threads more than pages need keeps pages answering
    # however many streams are open. Past connection_limit waitress accepts no
    # connection at all, so it leaves room above the threads for idle keep-alives.
    threads = PAGE_THREADS + settings.streams_max
    serve(
        app,
        host=settings.fglab_host,
        port=settings.fglab_port,
        threads=threads,
        connection_limit=threads + 100,
        # Read ahead one request, so waitress notices a client that left while its log
        # stream waits for lines (`waitress.client_disconnected`) and frees its slot.
        channel_request_lookahead=1,
        ident="FGLab",
    )
    return 0


def _up(args: argparse.Namespace) -> int:
    from fglab.up import StartError, run

    settings = load_settings()
    if args.flower_port is not None:
        settings = settings.with_changes(flower_port=args.flower_port)
    try:
        return run(settings, demo=not args.no_demo, verbose=args.verbose)
    except StartError as e:
        print(f"fglab: {e}", file=sys.stderr)
        return 1


def _flower(args: argparse.Namespace) -> int:
    """Replace this process with Flower (so signals reach it), protected like FGLab."""
    from fglab.monitor import FlowerConfigError, flower_command, flower_environment

    settings = load_settings()
    if args.port is not None:
        settings = settings.with_changes(flower_port=args.port)
    try:
        env = flower_environment(settings, settings.to_env(os.environ))
    except FlowerConfigError as e:
        print(f"fglab: {e}", file=sys.stderr)
        return 2
    _warn_if_open(args.address, settings.password)
    command = flower_command(settings, args.address)
    os.execve(command[0], command, env)
    return 0  # not reached


def _warn_if_open(host: str, password: str | None) -> None:
    """Log one warning when FGLab listens beyond loopback without a PASSWORD."""
    if password or _is_loopback(host):
        return
    logger.warning(
        "FGLab listens on %s without a PASSWORD: anyone who can reach it can read and run "
        "experiments; set PASSWORD, or FGLAB_HOST=127.0.0.1 to listen on this host only",
        host,
    )


def _is_loopback(host: str) -> bool:
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:  # a host name: it may resolve anywhere
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fglab", description="FGLab fleet")
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser(
        "up", help="run web, scheduler, a local worker and Flower on this host"
    )
    up.add_argument("--no-demo", action="store_true", help="do not create the demo project")
    up.add_argument(
        "--verbose",
        action="store_true",
        help="show every line of every process here too (they always go to <data>/logs/)",
    )
    up.add_argument(
        "--flower-port", type=int, help="Flower's port (default FGLAB_FLOWER_PORT, else 5555)"
    )
    up.set_defaults(func=_up)
    web = commands.add_parser("web", help="serve the web pages and the API")
    web.set_defaults(func=_web)
    flower = commands.add_parser(
        "flower", help="run Flower (Celery's monitor) with FGLab's PASSWORD as its basic auth"
    )
    flower.add_argument(
        "--address", default="127.0.0.1", help="where Flower listens (default 127.0.0.1)"
    )
    flower.add_argument("--port", type=int, help="default FGLAB_FLOWER_PORT, else 5555")
    flower.set_defaults(func=_flower)
    add_commands(commands)
    args = parser.parse_args(argv)
    if args.command == "up":
        from fglab.console import configure

        configure()
    else:
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
    try:
        return args.func(args)
    except SettingsError as e:
        print(f"fglab: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
