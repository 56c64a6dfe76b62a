"""The rerank stage with a stand-in cross-encoder: order, budget, failures, breaker, cache."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from atelier.offline.catalog.schema import Article
from atelier.serving.article_index import Hit
from atelier.serving.circuit_breaker import BreakerSettings
from atelier.serving.dependency import Dependency
from atelier.serving.model_readiness import Serving
from atelier.serving.reranking import ONE_INSTANCE
from fashion.v1 import degradation_pb2
from services.search.rerank import RerankStage, merge
from services.search.rerank_load import RerankLoad

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
        self.servings: list[Serving] = []

    async def score(
        self, query: str, passages: Sequence[str], timeout_s: float | None = None, serving: Serving = ONE_INSTANCE
    ) -> list[float]:
        self.calls.append((query, list(passages)))
        self.servings.append(serving)
        await asyncio.sleep(self.delay_s)
        if self.error:
            raise self.error
        return [self.scores.get(passage.split(".")[0], 0.5) for passage in passages]


def _stage(
    reranker: FakeReranker,
    candidates: int = 3,
    budget_s: float = 0.2,
    min_depth: int = 1,
    load: RerankLoad | None = None,
) -> RerankStage:
    dependency = Dependency("reranker", BreakerSettings(window=4, minimum_calls=2, open_s=60), budget_s)
    return RerankStage(reranker, dependency, candidates, 100, min_depth, load=load)  # type: ignore[arg-type]


async def test_top_candidates_come_back_in_cross_encoder_order() -> None:
    reranker = FakeReranker({"Item 0": 0.1, "Item 1": 0.9, "Item 2": 0.5})
    reranked = await _stage(reranker).rerank("black trousers", _hits(10))
    assert reranked.degradation is None and reranked.depth == 3
    candidates = reranked.candidates
    assert [c.hit.article_id for c in candidates][:4] == ["a1", "a2", "a0", "a3"]
    assert [c.rerank_score for c in candidates][:3] == pytest.approx([0.9, 0.5, 0.1])
    assert [c.score for c in candidates][:3] == pytest.approx([0.9, 0.5, 0.1])
    ((query, passages),) = reranker.calls
    assert query == "black trousers"
    hit = _hits(1)[0]
    assert passages[0] == Article.from_fields(hit.article_id, hit.fields).text()


async def test_a_search_asks_as_triton_runs_the_reranker_now() -> None:
    reranker = FakeReranker({"Item 1": 0.9})
    serving = [Serving()]
    dependency = Dependency("reranker", BreakerSettings(window=4, minimum_calls=2, open_s=60), 0.2)
    stage = RerankStage(reranker, dependency, 3, 100, serving=lambda: serving[0])  # type: ignore[arg-type]
    await stage.rerank("q", _hits(3))
    serving[0] = Serving(2, 64)  # a version loaded with two instances
    reranked = await stage.rerank("another q", _hits(3))
    assert reranker.servings == [Serving(), Serving(2, 64)] and reranked.candidates[0].hit.article_id == "a1"


def test_merge_appends_the_retrieval_tail_below_the_reranked_scores() -> None:
    hits = _hits(5)
    candidates = merge(hits, [0.2, 0.8])
    assert [c.hit.article_id for c in candidates] == ["a1", "a0", "a2", "a3", "a4"]
    assert candidates[2].rerank_score is None
    scores = [c.score for c in candidates]
    assert scores == sorted(scores, reverse=True)
    assert scores[2] < 0.2


def test_merge_keeps_retrieval_order_on_ties() -> None:
    assert [c.hit.article_id for c in merge(_hits(3), [0.5, 0.5, 0.5])] == ["a0", "a1", "a2"]


async def test_over_budget_keeps_retrieval_order_and_says_so() -> None:
    reranked = await _stage(FakeReranker(delay_s=1.0), budget_s=0.05).rerank("q", _hits(5))
    candidates, degradation = reranked.candidates, reranked.degradation
    assert reranked.depth == 0
    assert [c.hit.article_id for c in candidates] == ["a0", "a1", "a2", "a3", "a4"]
    assert all(c.rerank_score is None for c in candidates)
    assert degradation.reason == Reason.DEGRADATION_REASON_INFERENCE_TIMEOUT
    assert (degradation.component, degradation.fallback) == ("reranker", "ann_order")
    assert "50 ms" in degradation.detail


async def test_failure_keeps_retrieval_order_and_the_breaker_opens() -> None:
    reranker = FakeReranker(error=RuntimeError("model not ready"))
    stage = _stage(reranker)
    for query in ("q1", "q2"):
        degradation = (await stage.rerank(query, _hits(5))).degradation
        assert degradation.reason == Reason.DEGRADATION_REASON_INFERENCE_UNAVAILABLE
        assert "model not ready" in degradation.detail
    calls = len(reranker.calls)
    reranked = await stage.rerank("q3", _hits(5))
    candidates, degradation = reranked.candidates, reranked.degradation
    assert degradation.reason == Reason.DEGRADATION_REASON_DOWNSTREAM_CIRCUIT_OPEN
    assert len(reranker.calls) == calls  # not called while open
    assert [c.hit.article_id for c in candidates][:3] == ["a0", "a1", "a2"]


async def test_a_repeated_query_scores_only_new_candidates() -> None:
    reranker = FakeReranker({"Item 3": 0.99})
    stage = _stage(reranker, candidates=3)
    await stage.rerank("q", _hits(5))
    candidates = (await stage.rerank("q", _hits(5)[1:])).candidates  # a3 is new in the top 3
    assert len(reranker.calls[1][1]) == 1
    assert candidates[0].hit.article_id == "a3"


async def test_under_load_a_search_reranks_as_deep_as_its_budget_allows_and_says_so() -> None:
    # 10 ms a pair measured, 40 pairs in flight: 0.2 s budget x 0.8 planned / 10 ms = 16 pairs, 40 queued
    load = RerankLoad(seconds_per_pair=0.002, pairs_in_flight=40, calls_in_flight=1)
    reranker = FakeReranker({"Item 4": 0.9})
    dependency = Dependency("reranker", BreakerSettings(), 0.2)
    stage = RerankStage(reranker, dependency, 100, 100, min_depth=20, planned_share=0.8, load=load)  # type: ignore[arg-type]
    reranked = await stage.rerank("black trousers", _hits(100))
    # room for 0.16 s / 2 ms = 80 pairs, 40 of them in flight: 40 new ones
    assert reranked.depth == 40 and len(reranker.calls[0][1]) == 40
    assert [c.hit.article_id for c in reranked.candidates][:2] == ["a4", "a0"]
    assert len(reranked.candidates) == 100  # the rest follow in retrieval order
    assert all(c.rerank_score is None for c in reranked.candidates[40:])
    degradation = reranked.degradation
    assert degradation.reason == Reason.DEGRADATION_REASON_RERANK_DEPTH_REDUCED
    assert "top 40 of 100" in degradation.detail and "40 pairs in flight" in degradation.detail


async def test_below_the_floor_a_search_is_shed_at_once_without_tripping_the_breaker() -> None:
    load = RerankLoad(seconds_per_pair=0.002, pairs_in_flight=70, calls_in_flight=1)  # room for 10 new pairs
    reranker = FakeReranker()
    dependency = Dependency("reranker", BreakerSettings(window=4, minimum_calls=2, open_s=60), 0.2)
    stage = RerankStage(reranker, dependency, 100, 100, min_depth=20, planned_share=0.8, load=load)  # type: ignore[arg-type]
    for query in ("q1", "q2", "q3"):
        reranked = await stage.rerank(query, _hits(100))
        assert reranked.depth == 0
        assert reranked.degradation.reason == Reason.DEGRADATION_REASON_DOWNSTREAM_CAPACITY_REJECTED
        assert "20-candidate floor" in reranked.degradation.detail
    assert reranker.calls == []
    assert [c.hit.article_id for c in reranked.candidates] == [f"a{i}" for i in range(100)]
    load.pairs_in_flight = load.calls_in_flight = 0  # the queue drained: it reranks again (the breaker is still closed)
    reranked = await stage.rerank("q4", _hits(100))
    assert reranked.depth == 80 and len(reranker.calls) == 1


async def test_cached_scores_below_the_planned_depth_join_it_for_free() -> None:
    reranker = FakeReranker()
    load = RerankLoad()
    stage = _stage(reranker, candidates=10, load=load)
    await stage.rerank("q", _hits(10))  # all 10 scored and cached
    load.seconds_per_pair, load.pairs_in_flight, load.calls_in_flight = 0.01, 1000, 1  # now no room at all
    reranked = await stage.rerank("q", _hits(10))
    assert (reranked.depth, reranked.degradation) == (10, None) and len(reranker.calls) == 1


async def test_concurrent_searches_share_the_budget() -> None:
    reranker = FakeReranker(delay_s=0.05)
    load = RerankLoad(seconds_per_pair=0.001)  # 0.2 s x 1.0 / 1 ms: 200 pairs fit
    dependency = Dependency("reranker", BreakerSettings(), 0.2)
    stage = RerankStage(reranker, dependency, 100, 100, min_depth=20, load=load)  # type: ignore[arg-type]
    first, second, third = await asyncio.gather(*(stage.rerank(f"q{i}", _hits(100)) for i in range(3)))
    assert [first.depth, second.depth, third.depth] == [100, 100, 0]
    # the fake answers both at once in 50 ms: measured cheaper than assumed
    assert load.pairs_in_flight == 0 and load.seconds_per_pair < 0.001


async def test_while_the_reranker_is_being_prepared_retrieval_order_says_so() -> None:
    reranker = FakeReranker({"Item 1": 0.9})
    dependency = Dependency("reranker", BreakerSettings(), 0.2, ready=lambda: False)
    stage = RerankStage(reranker, dependency, 3, 100)  # type: ignore[arg-type]
    reranked = await stage.rerank("black trousers", _hits(5))
    candidates, degradation = reranked.candidates, reranked.degradation
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
    await stage.rerank("black trousers", _hits(2))
    await stage.rerank("black trousers", _hits(2))
    assert len(reranker.calls) == 1  # cached
    version = 2  # published: the old version's scores no longer hold
    reranker.scores = {"Item 0": 0.9, "Item 1": 0.1}
    candidates = (await stage.rerank("black trousers", _hits(2))).candidates
    assert len(reranker.calls) == 2 and [c.hit.article_id for c in candidates] == ["a0", "a1"]


async def test_an_idle_reranker_always_takes_a_call_at_the_floor_so_a_stale_cost_comes_down() -> None:
    load = RerankLoad(seconds_per_pair=0.05)  # learnt in a burst: 20 pairs would take 1 s
    reranker = FakeReranker()
    dependency = Dependency("reranker", BreakerSettings(), 0.2)
    stage = RerankStage(reranker, dependency, 100, 100, min_depth=20, load=load)  # type: ignore[arg-type]
    reranked = await stage.rerank("q", _hits(100))
    assert reranked.depth == 20 and len(reranker.calls[0][1]) == 20
    assert load.seconds_per_pair < 0.05  # measured again, cheaper


async def test_until_the_cost_is_measured_one_call_at_a_time_measures_it() -> None:
    reranker = FakeReranker(delay_s=0.02)
    dependency = Dependency("reranker", BreakerSettings(), 0.2)
    stage = RerankStage(reranker, dependency, 100, 100, min_depth=20)  # type: ignore[arg-type]
    first, second = await asyncio.gather(stage.rerank("q1", _hits(100)), stage.rerank("q2", _hits(100)))
    assert (first.depth, second.depth) == (100, 0)
    assert "cost not measured yet" in second.degradation.detail
    assert stage.load.seconds_per_pair is not None
