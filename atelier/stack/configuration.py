"""Every process's settings model, for `atelier config [PROCESS]` and docs/configuration.md.

`atelier config search` prints the settings the search service would run with here (its
variables, validated, `# default: ...` where they differ); `atelier config --markdown` writes
docs/configuration.md, which a test keeps in step with the models.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Iterator

from atelier.serving.settings import Endpoints, ServerSettings, Settings, SettingsError, Variable

# Read by several processes: documented once.
SHARED: dict[str, type[Settings]] = {"endpoints": Endpoints, "server settings": ServerSettings}

# process -> "module:Class" of each settings model it reads, in the order the docs list them.
PROCESSES: dict[str, tuple[str, ...]] = {
    "search": ("services.search.config:SearchSettings",),
    "ranker": ("services.ranker.config:RankerSettings",),
    "features": ("services.features.config:FeaturesSettings",),
    "stream": ("services.stream.config:StreamSettings",),
    "triton": (
        "atelier.inference.settings:TextEmbeddingSettings",
        "atelier.inference.settings:RerankerSettings",
        "atelier.inference.settings:ClipImageSettings",
        "atelier.inference.settings:ClipTextSettings",
    ),
    "launcher": (
        "atelier.stack.settings:LauncherSettings",
        "atelier.serving.settings:StatePaths",
        "atelier.edge.settings:EnvoyLimits",
    ),
    "edge-auth": ("atelier.edge.settings:EdgeAuthSettings",),
    "clients": ("atelier.edge.settings:ClientKeySettings",),
    "catalog": ("atelier.offline.catalog.command:CatalogSettings",),
}
WHO = {
    "search": "the search service (services/search)",
    "ranker": "the ranker service (services/ranker)",
    "features": "the features service (services/features)",
    "stream": "both stream workers (services/stream, services/stream/retry)",
    "triton": "Triton's Python-backend models (atelier/inference), set in Triton's environment",
    "launcher": "`atelier up`/`down`/`status` (atelier/stack), and the limits it renders into Envoy's config",
    "edge-auth": "the edge's authorization service (atelier/edge/authz.py) and `atelier keys`",
    "clients": "our clients of the edge: `atelier eval`, the benchmarks, the tests",
    "catalog": "`atelier catalog load` (atelier/offline/catalog)",
}
DOCS_HEADER = """# Configuration

Every setting is an environment variable, read by one pydantic-settings model per process and
validated when the process starts: a bad value stops it with the variable's name and the reason,
and a variable under a process's own prefix (`SEARCH_`, `RANKER_`, `FEATURES_`, `STREAM_`) that it
does not know stops it too (a typo, or a name from before a rename). Durations are in seconds
(`_S`); an empty variable counts as unset. `atelier config [PROCESS]` prints the values a process
would run with here.

`ATELIER_*` variables are the stack's: where every component listens and the services' server
settings (both shared, listed once below), the launcher's and the Triton models'.

This file is generated from the models: `atelier config --markdown > docs/configuration.md`
(tests/unit/test_configuration.py fails when it is out of date).
"""


def models(process: str) -> Iterator[type[Settings]]:
    for path in PROCESSES[process]:
        module, name = path.split(":")
        yield getattr(importlib.import_module(module), name)


def variables(process: str) -> list[Variable]:
    """Every variable the process reads, each once."""
    seen: dict[str, Variable] = {}
    for model in models(process):
        for variable in model.variables():
            seen.setdefault(variable.name, variable)
    return list(seen.values())


def effective(process: str) -> list[Variable]:
    """The values the process would run with in this environment (SettingsError when one is bad)."""
    seen: dict[str, Variable] = {}
    for model in models(process):
        for variable in model.from_env().effective():
            seen.setdefault(variable.name, variable)
    return list(seen.values())


def _cell(text: str) -> str:
    return text.replace("|", "\\|") if text else " "


def _table(rows: list[Variable]) -> list[str]:
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    for variable in rows:
        default = f"`{variable.default}`" if variable.default else " "
        lines.append(f"| `{variable.name}` | {default} | {_cell(variable.description)} |")
    return [*lines, ""]


def markdown() -> str:
    shared = {name: [v.name for v in model.variables()] for name, model in SHARED.items()}
    lines = [DOCS_HEADER]
    for process in PROCESSES:
        own = variables(process)
        names = {variable.name for variable in own}
        reads = [name for name, group in shared.items() if set(group) <= names]
        also = f" It also reads the shared {' and '.join(reads)} (below)." if reads else ""
        lines += [f"## {process}", "", f"Read by {WHO[process]}.{also}", ""]
        lines += _table([v for v in own if not any(v.name in shared[name] for name in reads)])
    for name, model in SHARED.items():
        lines += [f"## shared: {name}", "", " ".join((model.__doc__ or "").split()), ""]
        lines += _table(model.variables())
    return "\n".join(lines)


def print_effective(process: str) -> int:
    try:
        values = effective(process)
    except SettingsError as error:
        print(f"atelier: {process}: {error}", file=sys.stderr)
        return 2
    print(f"# {process}: {WHO[process]}")
    for variable in values:
        note = f"  # default: {variable.default or '(empty)'}" if variable.value != variable.default else ""
        print(f"{variable.name}={variable.value}{note}")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.markdown:
        sys.stdout.write(markdown())
        return 0
    status = 0
    for process in [args.process] if args.process else list(PROCESSES):
        status = max(status, print_effective(process))
    return status


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("config", help="print the settings each process runs with (validated)")
    parser.add_argument("process", nargs="?", choices=list(PROCESSES), help="one process (default: all)")
    parser.add_argument("--markdown", action="store_true", help="every variable as docs/configuration.md")
    parser.set_defaults(run=run)
