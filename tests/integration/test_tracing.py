"""Tracing end to end on the local stack: one search and one click through Envoy each form one trace,
kept by the stack's own receiver (atelier.stack.trace_receiver) and found by the answer's x-trace-id."""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from typing import Any

from atelier.edge.client import key_headers
from atelier.stack.launcher import Stack
from atelier.stack.trace_view import load_spans, trace_tree, traces_dir

Span = dict[str, Any]
# The services export a batch of spans every few seconds (BatchSpanProcessor), Envoy every 5 s.
EXPORT_WAIT_S = 30


def _request(stack: Stack, method: str, path: str, body: dict | None = None) -> tuple[int, str, dict]:
    """(status, the answer's x-trace-id, JSON body) of a REST call through Envoy."""
    request = urllib.request.Request(
        stack.endpoints.edge_url + path,
        data=json.dumps(body).encode() if body is not None else None,
        method=method,
        headers={"content-type": "application/json", **key_headers()},
    )
    with urllib.request.urlopen(request, timeout=15) as response:
        return response.status, response.headers.get("x-trace-id", ""), json.loads(response.read())


def _trace(stack: Stack, trace_id: str, complete: Callable[[list[Span]], bool]) -> list[Span]:
    """The trace's spans once `complete` says all have arrived (fails after EXPORT_WAIT_S)."""
    started = time.monotonic()
    while True:
        spans = [span for span in load_spans(traces_dir(stack.state)) if span["trace_id"] == trace_id]
        if complete(spans):
            print("\n".join(trace_tree(spans, trace_id)))
            return spans
        assert time.monotonic() - started < EXPORT_WAIT_S, f"trace {trace_id} incomplete: {spans}"
        time.sleep(0.5)


def _one(spans: list[Span], service: str, kind: str, name: Callable[[str], bool]) -> Span | None:
    found = [span for span in spans if span["service"] == service and span["kind"] == kind and name(span["name"])]
    return found[0] if found else None


SEARCH_CLIENT_CALLS = {
    "Triton": "/inference.GRPCInferenceService/",
    "Milvus": "/milvus.proto.milvus.MilvusService/",
    "features": "/fashion.v1.FeaturesService/",
    "ranker": "/fashion.v1.RankerService/",
}


def _search_trace_complete(spans: list[Span]) -> bool:
    return (
        _one(spans, "atelier-envoy", "server", lambda _: True) is not None
        and _one(spans, "atelier-search", "server", lambda n: n.endswith("/SearchText")) is not None
        and all(
            _one(spans, "atelier-search", "client", lambda n, p=prefix: n.startswith(p)) is not None
            for prefix in SEARCH_CLIENT_CALLS.values()
        )
        and _one(spans, "atelier-features", "client", lambda n: not n.startswith("/")) is not None
    )


def test_one_search_is_one_trace_from_envoy_to_every_dependency(
    catalog: int, stack: Stack, article_ids: list[str]
) -> None:
    user = f"u-{uuid.uuid4().hex[:8]}"
    # a query of its own, so that its embedding is not cached (Triton is asked)
    query = urllib.parse.urlencode({"query": f"black dress {uuid.uuid4().hex[:6]}", "k": 5, "userId": user})
    status, trace_id, body = _request(stack, "GET", f"/v1/search?{query}")
    assert status == 200 and body["results"], body
    assert len(trace_id) == 32, "the answer names its trace (x-trace-id)"

    spans = _trace(stack, trace_id, _search_trace_complete)
    by_id = {span["span_id"]: span for span in spans}
    envoy = _one(spans, "atelier-envoy", "server", lambda _: True)
    search = _one(spans, "atelier-search", "server", lambda n: n.endswith("/SearchText"))
    assert envoy["parent_span_id"] == "" or envoy["parent_span_id"] not in by_id  # the trace starts at the edge
    assert search["parent_span_id"] == envoy["span_id"]
    for prefix in SEARCH_CLIENT_CALLS.values():
        call = _one(spans, "atelier-search", "client", lambda n, p=prefix: n.startswith(p))
        # each call's span is inside the search's (directly or under one of its stages)
        ancestor = call
        while ancestor["parent_span_id"] in by_id and ancestor is not search:
            ancestor = by_id[ancestor["parent_span_id"]]
        assert ancestor is search, call
    # the features service continues it (its server span under search's client span) down to Redis
    features = _one(spans, "atelier-features", "server", lambda n: n.startswith("/fashion.v1.FeaturesService/"))
    assert by_id[features["parent_span_id"]]["service"] == "atelier-search"
    redis = _one(spans, "atelier-features", "client", lambda n: not n.startswith("/"))
    assert redis["attributes"].get("db.system") == "redis" or redis["attributes"].get("db.system.name") == "redis"


def test_one_click_is_one_trace_from_envoy_through_kafka_to_the_redis_write(
    catalog: int, stack: Stack, article_ids: list[str]
) -> None:
    user = f"u-{uuid.uuid4().hex[:8]}"
    click = {"userId": user, "itemId": article_ids[0], "position": 1, "source": "search", "device": "web"}
    status, trace_id, body = _request(stack, "POST", "/v1/events/clicks", click)
    assert status == 200 and body["eventId"], body
    assert len(trace_id) == 32

    def complete(spans: list[Span]) -> bool:
        process = _one(spans, "atelier-stream", "consumer", lambda n: n.startswith("process "))
        # each service exports on its own schedule: wait for every span the test reads
        return (
            _one(spans, "atelier-envoy", "server", lambda _: True) is not None
            and _one(spans, "atelier-features", "server", lambda n: n.endswith("/RecordClick")) is not None
            and _one(spans, "atelier-features", "producer", lambda n: n.startswith("send ")) is not None
            and process is not None
            and any(span["parent_span_id"] == process["span_id"] for span in spans)
        )

    spans = _trace(stack, trace_id, complete)
    by_id = {span["span_id"]: span for span in spans}
    envoy = _one(spans, "atelier-envoy", "server", lambda _: True)
    record_click = _one(spans, "atelier-features", "server", lambda n: n.endswith("/RecordClick"))
    send = _one(spans, "atelier-features", "producer", lambda n: n.startswith("send "))
    process = _one(spans, "atelier-stream", "consumer", lambda n: n.startswith("process "))
    # the Lua apply (after a SCRIPT LOAD when Redis did not have the script yet)
    writes = [span for span in spans if span["parent_span_id"] == process["span_id"]]
    assert record_click["parent_span_id"] == envoy["span_id"]
    assert by_id[send["parent_span_id"]] is record_click
    assert process["parent_span_id"] == send["span_id"]  # continued from the record's traceparent
    assert {(span["service"], span["kind"]) for span in writes} == {("atelier-stream", "client")}
    assert [span["name"] for span in writes if span["status"] != "error"][-1] == "EVALSHA"
