"""Search with a dependency down: a well-formed answer that says what was degraded and why."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from atelier.stack.launcher import Stack
from tests.integration.support import edge


@contextmanager
def _stopped(stack: Stack, component: str) -> Iterator[None]:
    stack.supervisor.signal(component, "STOP")
    try:
        yield
    finally:
        stack.supervisor.signal(component, "CONT")


@pytest.mark.parametrize("component", ["triton", "milvus"])
def test_inference_down_answers_with_popular_items_and_the_reason(catalog: int, stack: Stack, component: str) -> None:
    query = f"warm wool coat {uuid.uuid4().hex[:6]}"  # never cached
    with _stopped(stack, component):
        status, body = edge.search(stack, query=query, k=5)
    assert status == 200, body
    assert len(body["results"]) == 5
    assert [r["rank"] for r in body["results"]] == [1, 2, 3, 4, 5]
    assert all(r["article"]["name"] for r in body["results"])
    (degradation,) = body["degradations"]
    assert degradation["component"] == component
    assert degradation["reason"] in {
        "DEGRADATION_REASON_INFERENCE_TIMEOUT",
        "DEGRADATION_REASON_INFERENCE_UNAVAILABLE",
    }
    assert degradation["fallback"] in {"popular_24h", "popular_7d", "popular_global"}
    assert degradation["detail"]


def test_popular_fallback_honours_the_filter(catalog: int, stack: Stack) -> None:
    with _stopped(stack, "triton"):
        status, body = edge.search(stack, query=f"anything {uuid.uuid4().hex[:6]}", k=5, **{"filter.colours": "Black"})
    assert status == 200, body
    assert all(r["article"]["colour"] == "Black" for r in body["results"])


def test_personalisation_down_answers_unpersonalised_with_the_reason(catalog: int, stack: Stack) -> None:
    with _stopped(stack, "ranker"):
        status, body = edge.search(stack, query="black trousers", k=5, userId=f"u-{uuid.uuid4().hex[:6]}")
    assert status == 200, body
    assert len(body["results"]) == 5
    (degradation,) = [d for d in body["degradations"] if d["component"] != "reranker"]
    assert degradation["reason"] == "DEGRADATION_REASON_PERSONALIZATION_UNAVAILABLE"
    assert degradation["component"] == "ranker" and degradation["fallback"] == "retrieval_order"


def test_an_open_circuit_answers_at_once_without_waiting_on_the_dependency(catalog: int, stack: Stack) -> None:
    with _stopped(stack, "milvus"):
        reasons = []
        # The breaker opens at >= 50 % failures over its last 50 calls: after at least 10
        # failures, or up to 50 when earlier tests filled its window with successes.
        for _ in range(60):
            started = time.monotonic()
            status, body = edge.search(stack, query="black trousers", k=3)
            assert status == 200, body
            reasons.append((body["degradations"][0]["reason"], time.monotonic() - started))
            if len(reasons) > 1 and reasons[-1][0] == "DEGRADATION_REASON_DOWNSTREAM_CIRCUIT_OPEN":
                break
    assert reasons[0][0] != "DEGRADATION_REASON_DOWNSTREAM_CIRCUIT_OPEN"
    reason, seconds = reasons[-1]
    assert reason == "DEGRADATION_REASON_DOWNSTREAM_CIRCUIT_OPEN"
    assert seconds < 0.3  # no wait on the stopped Milvus
    # Recovery: after open_s the breaker lets probes through, and they close it.
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        status, body = edge.search(stack, query="black trousers", k=3)
        if status == 200 and not body["degradations"]:
            break
        time.sleep(0.5)
    assert body["degradations"] == [], "search did not recover after Milvus came back"
