"""The `atelier` command."""

from __future__ import annotations

import argparse
import os
import sys

from atelier.edge import command as keys_command
from atelier.model_repository import command as models_command
from atelier.offline.catalog import command as catalog_command
from atelier.offline.evaluation import command as eval_command
from atelier.stack import StackError, configuration, trace_view
from atelier.stack.logfiles import tail


def _stack():  # imported lazily: `atelier catalog` must not need the launcher's packages
    from atelier.stack.launcher import Stack

    return Stack.from_env()


def _up(args: argparse.Namespace) -> int:
    _stack().up()
    return 0


def _down(args: argparse.Namespace) -> int:
    _stack().down()
    return 0


def _status(args: argparse.Namespace) -> int:
    from atelier.stack.status_table import format_status

    rows = _stack().status()
    print(format_status(rows))
    from atelier.model_repository.first_run import describe
    from atelier.serving.settings import state_dir

    if (first_run := describe(state_dir())) is not None:
        print(first_run)
    return 0 if all(r["ready"] == "ready" for r in rows) else 3


def _logs(args: argparse.Namespace) -> int:
    stack = _stack()
    names = [args.component] if args.component else [c.name for c in stack.components()]
    files = [stack.log_file(name) for name in names]
    if args.follow:
        os.execvp("tail", ["tail", "-n", str(args.lines), "-F", *map(str, files)])
    for path in files:
        if len(files) > 1:
            print(f"==> {path} <==")
        sys.stdout.writelines(tail(path, args.lines))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="atelier", description="Atelier: personalised fashion search.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("up", help="start the whole stack on loopback").set_defaults(run=_up)
    commands.add_parser("down", help="stop everything `up` started").set_defaults(run=_down)
    commands.add_parser("status", help="show each component's state").set_defaults(run=_status)
    logs = commands.add_parser("logs", help="show a component's log (all when none is named)")
    logs.add_argument("component", nargs="?")
    logs.add_argument("-n", "--lines", type=int, default=40)
    logs.add_argument("-f", "--follow", action="store_true")
    logs.set_defaults(run=_logs)
    catalog_command.add_parser(commands)
    eval_command.add_parser(commands)
    models_command.add_parser(commands)
    keys_command.add_parser(commands)
    configuration.add_parser(commands)
    trace_view.add_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        sys.exit(args.run(args))
    except StackError as error:
        print(f"atelier: {error}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
