"""`atelier models`: the versions Triton serves (list, publish, rollback) and the training of the
models that cannot be downloaded (train-reranker, train-clip)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from atelier.model_repository.repository import FAMILIES
from atelier.offline.training import command as training_command


def add_parser(commands: argparse._SubParsersAction) -> None:
    models = commands.add_parser(
        "models", help="the model versions Triton serves, and training the models that cannot be downloaded"
    ).add_subparsers(dest="models_command", required=True)
    models.add_parser("list", help="each model's versions, the one serving, ready or not, device").set_defaults(
        run=run_list
    )
    publish = models.add_parser("publish", help="serve a checkpoint as the next version of a model, live (no restart)")
    publish.add_argument("model", choices=sorted(FAMILIES), help="clip publishes both CLIP towers")
    publish.add_argument(
        "source", type=Path, help="a transformers checkpoint directory (explainer: or a folder with one .gguf file)"
    )
    publish.add_argument(
        "--setting",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a model setting this version always runs with (atelier/inference/settings.py field names)",
    )
    publish.set_defaults(run=run_publish)
    rollback = models.add_parser("rollback", help="serve the version served before the current one again")
    rollback.add_argument("model", choices=sorted(FAMILIES))
    rollback.set_defaults(run=run_rollback)
    training_command.add_parsers(models)


def _publisher():  # imported lazily: training must not need the launcher's packages
    from atelier.model_repository.publishing import Publisher
    from atelier.serving.settings import Endpoints, state_dir
    from atelier.stack.models import model_repository
    from atelier.stack.settings import LauncherSettings

    grace_s = LauncherSettings.from_env().models_switch_grace_s
    return Publisher(model_repository(state_dir()), Endpoints.from_env(), switch_grace_s=grace_s)


def run_list(args: argparse.Namespace) -> int:
    rows = _publisher().rows()
    table = [
        {
            "model": row.model,
            "versions": ",".join(map(str, row.versions)) or "-",
            "serving": str(row.serving) if row.serving is not None else "-",
            "ready": row.ready,
            "device": row.device,
            "source": row.source,
        }
        for row in rows
    ]
    columns = ("model", "versions", "serving", "ready", "device", "source")
    widths = {c: max(len(c), *(len(r[c]) for r in table)) for c in columns}
    print("  ".join(c.upper().ljust(widths[c]) for c in columns).rstrip())
    for row in table:
        print("  ".join(row[c].ljust(widths[c]) for c in columns).rstrip())
    return 0


def _settings(pairs: list[str]) -> dict[str, object]:
    settings: dict[str, object] = {}
    for pair in pairs:
        name, separator, value = pair.partition("=")
        if not separator or not name:
            raise SystemExit(f"atelier models publish: --setting wants NAME=VALUE, got {pair!r}")
        try:
            settings[name] = json.loads(value)
        except ValueError:
            settings[name] = value
    return settings


def run_publish(args: argparse.Namespace) -> int:
    from atelier.model_repository.publishing import PublishError

    try:
        _publisher().publish(args.model, args.source, _settings(args.setting))
    except PublishError as error:
        print(f"atelier models publish: {error}")
        return 2
    return 0


def run_rollback(args: argparse.Namespace) -> int:
    from atelier.model_repository.publishing import PublishError

    try:
        _publisher().rollback(args.model)
    except PublishError as error:
        print(f"atelier models rollback: {error}")
        return 2
    return 0
