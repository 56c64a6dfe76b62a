"""The rerank stage with a stand-in cross-encoder: order, budget, failures, breaker, cache."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from atelier.offline.catalog.schema import Article
from atelier.serving.article_index import Hit
from atelier.serving.circuit_breaker import BreakerSettings
from atelier.serving.dependency import Dependency
from fashion.v1 import degradation_pb2
from services.search.rerank import RerankStage, merge

Reason = degradation_pb2.DegradationReason


def _hits(n: int) -> list[Hit]:
    return [
        Hit(f"a{i}", 0.9 - i * 0.01, {"name": f"Item {i}", "colour": "Black", "product_type": "Trousers"})
        for i in range(n)
    ]


class FakeReranker:
    def __init__(self, scores: dict[str, float] | None = None, delay_s: float = 0.0, error: Exception | None = None):
        self.scores = scores or {}
        self.delay_s = delay_s
        self.error = error
        self.calls: list[tuple[str, list[str]]] = []

    async def score(self, query: str, passages: Sequence[str], timeout_s: float | None = None) -> list[float]:
        self.calls.append((query, list(passages)))
        await asyncio.sleep(self.delay_s)
        if self.error:
            raise self.error
        return [self.scores.get(passage.split(".")[0], 0.5) for passage in passages]


def _stage(reranker: FakeReranker, candidates: int = 3, budget_s: float = 0.2, max_in_flight: int = 0) -> RerankStage:
    dependency = Dependency("reranker", BreakerSettings(window=4, minimum_calls=2, open_s=60), budget_s)
    return RerankStage(reranker, dependency, candidates, 100, max_in_flight)  # type: ignore[arg-type]


async def test_top_candidates_come_back_in_cross_encoder_order() -> None:
    reranker = FakeReranker({"Item 0": 0.1, "Item 1": 0.9, "Item 2": 0.5})
    candidates, degradation = await _stage(reranker).rerank("black trousers", _hits(10), k=2)
    assert degradation is None
    assert [c.hit.article_id for c in candidates] == ["a1", "a2", "a0"]
    assert [c.rerank_score for c in candidates] == pytest.approx([0.9, 0.5, 0.1])
    assert [c.score for c in candidates] == pytest.approx([0.9, 0.5, 0.1])
    ((query, passages),) = reranker.calls
    assert query == "black trousers"
    hit = _hits(1)[0]
    assert passages[0] == Article.from_fields(hit.article_id, hit.fields).text()


def test_merge_appends_the_retrieval_tail_below_the_reranked_scores() -> None:
    hits = _hits(5)
    candidates = merge(hits, [0.2, 0.8], k=4)
    assert [c.hit.article_id for c in candidates] == ["a1", "a0", "a2", "a3"]
    assert candidates[2].rerank_score is None
    scores = [c.score for c in candidates]
    assert scores == sorted(scores, reverse=True)
    assert scores[2] < 0.2


def test_merge_keeps_retrieval_order_on_ties() -> None:
    assert [c.hit.article_id for c in merge(_hits(3), [0.5, 0.5, 0.5], k=3)] == ["a0", "a1", "a2"]


async def test_over_budget_keeps_retrieval_order_and_says_so() -> None:
    candidates, degradation = await _stage(FakeReranker(delay_s=1.0), budget_s=0.05).rerank("q", _hits(5), k=3)
    assert [c.hit.article_id for c in candidates] == ["a0", "a1", "a2", "a3", "a4"]
    assert all(c.rerank_score is None for c in candidates)
    assert degradation.reason == Reason.DEGRADATION_REASON_INFERENCE_TIMEOUT
    assert (degradation.component, degradation.fallback) == ("reranker", "ann_order")
    assert "50 ms" in degradation.detail


async def test_failure_keeps_retrieval_order_and_the_breaker_opens() -> None:
    reranker = FakeReranker(error=RuntimeError("model not ready"))
    stage = _stage(reranker)
    for query in ("q1", "q2"):
        _, degradation = await stage.rerank(query, _hits(5), k=3)
        assert degradation.reason == Reason.DEGRADATION_REASON_INFERENCE_UNAVAILABLE
        assert "model not ready" in degradation.detail
    calls = len(reranker.calls)
    candidates, degradation = await stage.rerank("q3", _hits(5), k=3)
    assert degradation.reason == Reason.DEGRADATION_REASON_DOWNSTREAM_CIRCUIT_OPEN
    assert len(reranker.calls) == calls  # not called while open
    assert [c.hit.article_id for c in candidates][:3] == ["a0", "a1", "a2"]


async def test_a_repeated_query_scores_only_new_candidates() -> None:
    reranker = FakeReranker({"Item 3": 0.99})
    stage = _stage(reranker, candidates=3)
    await stage.rerank("q", _hits(5), k=3)
    candidates, _ = await stage.rerank("q", _hits(5)[1:], k=3)  # a3 is new in the top 3
    assert len(reranker.calls[1][1]) == 1
    assert candidates[0].hit.article_id == "a3"


async def test_beyond_max_in_flight_searches_keep_retrieval_order_at_once_without_tripping_the_breaker() -> None:
    reranker = FakeReranker({"Item 2": 0.9}, delay_s=0.05)
    stage = _stage(reranker, max_in_flight=1)
    first, second = await asyncio.gather(
        stage.rerank("black trousers", _hits(5), k=3), stage.rerank("white shirt", _hits(5), k=3)
    )
    assert first[1] is None and first[0][0].hit.article_id == "a2"
    candidates, degradation = second
    assert degradation is not None
    assert degradation.reason == Reason.DEGRADATION_REASON_DOWNSTREAM_CAPACITY_REJECTED
    assert (degradation.component, degradation.fallback) == ("reranker", "ann_order")
    assert [c.hit.article_id for c in candidates] == ["a0", "a1", "a2", "a3", "a4"]
    assert len(reranker.calls) == 1
    # The slot is free again, and the rejection did not count as a failure.
    _, degradation = await stage.rerank("white shirt", _hits(5), k=3)
    assert degradation is None


async def test_while_the_reranker_is_being_prepared_retrieval_order_says_so() -> None:
    reranker = FakeReranker({"Item 1": 0.9})
    dependency = Dependency("reranker", BreakerSettings(), 0.2, ready=lambda: False)
    stage = RerankStage(reranker, dependency, 3, 100)  # type: ignore[arg-type]
    candidates, degradation = await stage.rerank("black trousers", _hits(5), k=5)
    assert [c.hit.article_id for c in candidates] == ["a0", "a1", "a2", "a3", "a4"]
    assert degradation is not None and reranker.calls == []
    assert (degradation.reason, degradation.component, degradation.fallback) == (
        Reason.DEGRADATION_REASON_MODEL_NOT_READY,
        "reranker",
        "ann_order",
    )
    assert degradation.detail == "rerank: the model is still being prepared"


async def test_a_new_reranker_version_scores_afresh() -> None:
    reranker = FakeReranker({"Item 0": 0.1, "Item 1": 0.9})
    version = 1
    dependency = Dependency("reranker", BreakerSettings(), 0.2)
    stage = RerankStage(reranker, dependency, 2, 100, version=lambda: version)  # type: ignore[arg-type]
    await stage.rerank("black trousers", _hits(2), k=2)
    await stage.rerank("black trousers", _hits(2), k=2)
    assert len(reranker.calls) == 1  # cached
    version = 2  # published: the old version's scores no longer hold
    reranker.scores = {"Item 0": 0.9, "Item 1": 0.1}
    candidates, _ = await stage.rerank("black trousers", _hits(2), k=2)
    assert len(reranker.calls) == 2 and [c.hit.article_id for c in candidates] == ["a0", "a1"]
