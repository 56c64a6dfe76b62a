"""`atelier trace TRACE_ID` and `atelier traces`: the local stack's traces, read from what its
receiver keeps (atelier.stack.trace_receiver), printed as span trees.

A trace id is in every answer through the edge (the `x-trace-id` response header) and in Envoy's
access log (`trace_id`); a `traceparent` value is accepted too.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from atelier.serving.settings import state_dir
from atelier.stack import StackError
from atelier.stack.trace_receiver import OLDER_SPAN_FILE, SPAN_FILE

# Attributes worth a glance in a tree line; the rest stay in the file.
SHOWN_ATTRIBUTES = (
    "rpc.grpc.status_code",
    "http.status_code",
    "upstream_cluster",
    "messaging.destination.name",
    "messaging.batch.message_count",
)
# Redis pipelines are named after all their commands.
MAX_NAME_CHARS = 80
_TRACE_ID = re.compile(r"(?:[0-9a-f]{2}-)?([0-9a-f]{32})(?:-[0-9a-f]{16}-[0-9a-f]{2})?")


def traces_dir(state: Path) -> Path:
    return state / "traces"


def load_spans(directory: Path) -> list[dict[str, Any]]:
    """Every span kept, oldest file first; a line cut short by a write in progress is skipped."""
    spans = []
    for name in (OLDER_SPAN_FILE, SPAN_FILE):
        path = directory / name
        if not path.exists():
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                spans.append(json.loads(line))
            except ValueError:
                continue
    return spans


def parse_trace_id(text: str) -> str:
    """The 32 hex digits of a trace id, or of the one a `traceparent` value names."""
    match = _TRACE_ID.fullmatch(text.strip().lower())
    if match is None:
        raise ValueError(f"not a trace id (32 hex digits) nor a traceparent: {text!r}")
    return match.group(1)


def _line(span: dict[str, Any], depth: int) -> str:
    duration_ms = (span["end_ns"] - span["start_ns"]) / 1e6
    shown = [f"{key}={span['attributes'][key]}" for key in SHOWN_ATTRIBUTES if key in span.get("attributes", {})]
    status = f" ERROR {span.get('status_message', '')}".rstrip() if span.get("status") == "error" else ""
    extra = f"  {' '.join(shown)}" if shown else ""
    name = span["name"] if len(span["name"]) <= MAX_NAME_CHARS else span["name"][: MAX_NAME_CHARS - 3] + "..."
    return f"{'  ' * depth}{name}  [{span['service']} {span['kind']}] {duration_ms:.1f} ms{status}{extra}"


def trace_tree(spans: Iterable[dict[str, Any]], trace_id: str) -> list[str]:
    """The lines of one trace's tree, children under their parent in start order; empty when unknown."""
    mine = [span for span in spans if span["trace_id"] == trace_id]
    ids = {span["span_id"] for span in mine}
    children: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for span in mine:
        # A parent never received (its process has not exported it yet) makes its children roots.
        children[span["parent_span_id"] if span["parent_span_id"] in ids else ""].append(span)
    lines: list[str] = []

    def walk(parent: str, depth: int) -> None:
        for span in sorted(children.get(parent, []), key=lambda s: s["start_ns"]):
            lines.append(_line(span, depth))
            walk(span["span_id"], depth + 1)

    walk("", 0)
    return lines


def recent_traces(spans: Iterable[dict[str, Any]], last: int, everything: bool = False) -> list[str]:
    """One line per trace, the `last` most recently started: id, root span, spans, services. Only
    requests (a trace whose root is a server span: Envoy's, or a service's when called directly)
    unless `everything` (the services' background calls too: model and index polling)."""
    by_trace: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for span in spans:
        by_trace[span["trace_id"]].append(span)
    summaries = []
    for trace_id, members in by_trace.items():
        ids = {span["span_id"] for span in members}
        roots = [span for span in members if span["parent_span_id"] not in ids] or members
        root = min(roots, key=lambda s: s["start_ns"])
        if not everything and root["kind"] != "server":
            continue
        services = sorted({span["service"] for span in members})
        duration_ms = (max(s["end_ns"] for s in members) - root["start_ns"]) / 1e6
        # Envoy's span is `ingress`: the method it routed to says more.
        what = root.get("attributes", {}).get("grpc.path") or root["name"]
        line = f"{trace_id}  {what}  {duration_ms:.1f} ms  {len(members)} spans  {', '.join(services)}"
        summaries.append((root["start_ns"], line))
    return [line for _, line in sorted(summaries)[-last:]] if last > 0 else []


def _trace(args: argparse.Namespace) -> int:
    try:
        trace_id = parse_trace_id(args.trace_id)
    except ValueError as error:
        raise StackError(str(error)) from None
    lines = trace_tree(load_spans(traces_dir(state_dir())), trace_id)
    if not lines:
        print(f"no spans of trace {trace_id} (yet: services export every few seconds)")
        return 1
    print("\n".join(lines))
    return 0


def _traces(args: argparse.Namespace) -> int:
    lines = recent_traces(load_spans(traces_dir(state_dir())), args.last, args.all)
    print("\n".join(lines) if lines else "no traces yet")
    return 0


def add_parser(commands: argparse._SubParsersAction) -> None:
    trace = commands.add_parser("trace", help="print one trace of the local stack as a span tree")
    trace.add_argument("trace_id", help="32 hex digits (an answer's x-trace-id header) or a traceparent")
    trace.set_defaults(run=_trace)
    traces = commands.add_parser("traces", help="list the local stack's most recent traces")
    traces.add_argument("--last", type=int, default=20, help="how many (default 20)")
    traces.add_argument("--all", action="store_true", help="background calls too, not only requests")
    traces.set_defaults(run=_traces)
