"""Search through Envoy with the cross-encoder: reranked answers, and ANN order with a reason
when the reranker is gone."""

from __future__ import annotations

import time
import uuid

import pytest
import tritonclient.grpc as grpcclient

from atelier.stack.launcher import Stack
from tests.integration.conftest import RERANKING
from tests.integration.support import edge

pytestmark = pytest.mark.skipif(
    not RERANKING, reason="needs trained reranker weights: ATELIER_TEST_RERANK_MODEL_DIR=models/reranker"
)


def test_search_reranks_the_top_candidates(catalog: int, stack: Stack) -> None:
    status, body = edge.search(stack, query=f"black slim fit jeans {uuid.uuid4().hex[:4]}", k=10)
    assert status == 200, body
    results = body["results"]
    assert len(results) == 10
    assert body.get("degradations", []) == []
    assert all(0 < r["rerankScore"] < 1 for r in results)
    assert [r["score"] for r in results] == sorted((r["score"] for r in results), reverse=True)
    assert [r["score"] for r in results] == [r["rerankScore"] for r in results]
    assert "rerank" in {t["stage"] for t in body["timings"]}


def test_without_the_reranker_search_keeps_ann_order_and_says_why(catalog: int, stack: Stack) -> None:
    triton = grpcclient.InferenceServerClient(stack.endpoints.triton_address)
    triton.unload_model("reranker")
    try:
        deadline = time.monotonic() + 20
        while triton.is_model_ready("reranker") and time.monotonic() < deadline:
            time.sleep(0.1)
        status, body = edge.search(stack, query=f"white cotton shirt {uuid.uuid4().hex[:4]}", k=5)
        assert status == 200, body
        (degradation,) = body["degradations"]
        assert degradation["component"] == "reranker"
        assert degradation["fallback"] == "ann_order"
        assert degradation["reason"] in {
            "DEGRADATION_REASON_MODEL_NOT_READY",
            "DEGRADATION_REASON_INFERENCE_UNAVAILABLE",
            "DEGRADATION_REASON_DOWNSTREAM_CIRCUIT_OPEN",
        }
        results = body["results"]
        assert len(results) == 5 and not any("rerankScore" in r for r in results)
        retrieval = [r["retrievalScore"] for r in results]
        assert retrieval == sorted(retrieval, reverse=True)
    finally:
        triton.load_model("reranker")
        triton.close()
    deadline = time.monotonic() + 60  # the breaker may be open for a few seconds
    while True:
        status, body = edge.search(stack, query=f"white cotton shirt {uuid.uuid4().hex[:4]}", k=5)
        if status == 200 and not body.get("degradations") and "rerankScore" in body["results"][0]:
            break
        assert time.monotonic() < deadline, body
        time.sleep(0.5)
