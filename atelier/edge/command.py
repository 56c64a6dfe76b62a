"""`atelier keys create|revoke|list`: the edge's API keys. A change takes effect on the next request
(the authorization service re-reads the key file); nothing restarts."""

from __future__ import annotations

import argparse
import sys

from atelier.edge.keys import KeyFile, KeyFileError
from atelier.edge.settings import KeyFileSettings, RateLimitSettings


def _keys() -> KeyFile:
    return KeyFile(KeyFileSettings.from_env().path())


def _create(args: argparse.Namespace) -> int:
    key = _keys().create(args.name, args.rate, args.burst)
    print(key)
    print(f"API key {args.name!r} created; it is shown only now. Send it as the x-api-key header.", file=sys.stderr)
    return 0


def _revoke(args: argparse.Namespace) -> int:
    _keys().revoke(args.name)
    print(f"API key {args.name!r} revoked", file=sys.stderr)
    return 0


def _list(args: argparse.Namespace) -> int:
    keys = _keys()
    default = RateLimitSettings.from_env()
    rows = [("NAME", "CREATED", "RATE/S", "BURST")]
    for key in keys.keys():
        rate = f"{key.rate_per_s:g}" if key.rate_per_s else f"{default.rate_per_s:g} (default)"
        burst = str(key.burst) if key.burst else f"{default.burst} (default)"
        rows.append((key.name, key.created, rate, burst))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    print(f"key file: {keys.path}", file=sys.stderr)
    return 0


def _guarded(run):
    def guarded(args: argparse.Namespace) -> int:
        try:
            return run(args)
        except KeyFileError as error:
            print(f"atelier keys: {error}", file=sys.stderr)
            return 1

    return guarded


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("keys", help="the edge's API keys (stored hashed; changes apply without restarts)")
    actions = parser.add_subparsers(dest="keys_command", required=True)
    create = actions.add_parser("create", help="create a key and print it (only this once)")
    create.add_argument("name", help="the key's name, shown in access logs and metrics")
    create.add_argument("--rate", type=float, default=None, help="requests/s (default: ATELIER_EDGE_RATE_PER_S)")
    create.add_argument("--burst", type=int, default=None, help="requests at once (default: ATELIER_EDGE_BURST)")
    create.set_defaults(run=_guarded(_create))
    revoke = actions.add_parser("revoke", help="revoke a key: its next request is refused")
    revoke.add_argument("name")
    revoke.set_defaults(run=_guarded(_revoke))
    actions.add_parser("list", help="every key's name, creation time and rate limit").set_defaults(run=_list)
