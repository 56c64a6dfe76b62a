"""Hybrid search: the normalised weighted merge, and answers when a recall list fails."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from atelier.serving.article_index import Hit
from atelier.serving.circuit_breaker import BreakerSettings, CircuitBreaker
from fashion.v1 import degradation_pb2, search_service_pb2
from services.search.config import SearchSettings
from services.search.hybrid import RecallList, merge, normalised
from services.search.rerank import retrieval_order
from services.search.text_search import Answer, DependencyError, Recall, Timings, result_message
from services.search.validation import HybridQuery, ImageQuery
from services.search.vision_search import VisionSearch

Reason = degradation_pb2.DegradationReason


def hits(*pairs: tuple[str, float]) -> list[Hit]:
    return [Hit(article_id, score, {"name": article_id}) for article_id, score in pairs]


def test_scores_are_min_max_normalised_within_a_list() -> None:
    assert normalised(hits(("a", 0.9), ("b", 0.6), ("c", 0.3))) == pytest.approx([1.0, 0.5, 0.0])
    assert normalised(hits(("a", 0.4), ("b", 0.4))) == [1.0, 1.0]
    assert normalised([]) == []


def test_merge_weights_lists_and_merges_duplicates() -> None:
    text = hits(("a", 0.8), ("b", 0.7), ("c", 0.6))  # normalised 1, .5, 0
    image = hits(("c", 0.3), ("d", 0.2), ("b", 0.1))  # normalised 1, .5, 0
    merged = merge({"text": RecallList(text, 0.6), "image": RecallList(image, 0.4)}, limit=10)
    scores = {hit.article_id: hit.score for hit in merged}
    assert scores == pytest.approx({"a": 0.6, "b": 0.3, "c": 0.4, "d": 0.2})
    assert [hit.article_id for hit in merged] == ["a", "c", "b", "d"]
    assert len(merged) == len({hit.article_id for hit in merged})


def test_merge_keeps_the_limit_and_first_found_order_on_ties() -> None:
    merged = merge({"x": RecallList(hits(("a", 1.0), ("b", 1.0), ("c", 1.0)), 1.0)}, limit=2)
    assert [hit.article_id for hit in merged] == ["a", "b"]


class FakeTextSearch:
    """TextSearch's surface that vision search uses: its recall, retrieval and final stages."""

    def __init__(self, text_fails: bool = False, milvus_fails_for: str = "") -> None:
        self.text_fails = text_fails
        self.milvus_fails_for = milvus_fails_for
        self.rerank_query: str | None = "unset"

    async def recall_text(self, text: str, filters: dict, limit: int, timings: Timings) -> list[Hit]:
        if self.text_fails:
            raise DependencyError("triton", "embedding failed: down")
        return hits(("t1", 0.9), ("shared", 0.8), ("t2", 0.1))

    async def retrieve(
        self, collection: str, vector: np.ndarray, filters: dict, limit: int, timings: Timings, stage: str
    ) -> list[Hit]:
        if stage == self.milvus_fails_for:
            raise DependencyError("milvus", "retrieval failed: down", timed_out=True)
        if stage == "ann_image":
            return hits(("i1", 0.5), ("shared", 0.45), ("i2", 0.1))
        return hits(("c1", 0.3), ("shared", 0.28), ("c2", 0.1))

    async def answer(self, recall: Recall, rerank_query: str | None, k: int, user_id: str) -> Answer:
        self.rerank_query = rerank_query
        timings = Timings()
        found, degradations = await recall(timings)
        results = [result_message(c, rank) for rank, c in enumerate(retrieval_order(found)[:k], start=1)]
        return Answer(results, degradations, timings)


class FakeClip:
    def __init__(self, fails: bool = False) -> None:
        self.fails = fails

    async def embed_images(self, images: list[bytes]) -> np.ndarray:
        if self.fails:
            raise ConnectionError("clip down")
        return np.ones((len(images), 4), dtype=np.float32) / 2

    async def embed_texts(self, texts: list[str]) -> np.ndarray:
        return await self.embed_images([b""] * len(texts))


def vision(text: FakeTextSearch, clip: FakeClip) -> VisionSearch:
    settings = SearchSettings.from_env({})
    breaker = CircuitBreaker("clip", BreakerSettings())
    return VisionSearch(settings, text, clip, breaker)  # type: ignore[arg-type]


def ids(response: search_service_pb2.SearchHybridResponse | search_service_pb2.SearchImageResponse) -> list[str]:
    return [result.article.article_id for result in response.results]


async def test_image_search_recalls_from_the_image_collection_without_rerank() -> None:
    text = FakeTextSearch()
    response = await vision(text, FakeClip()).search_image(ImageQuery(b"photo", 10, "", {}))
    assert ids(response) == ["i1", "shared", "i2"]
    assert text.rerank_query is None and not response.degradations


async def test_hybrid_merges_all_three_lists_and_reranks_by_the_query() -> None:
    text = FakeTextSearch()
    response = await vision(text, FakeClip()).search_hybrid(HybridQuery("red dress", b"photo", 10, "", {}))
    assert ids(response)[0] == "shared"  # found by all three lists
    assert set(ids(response)) == {"t1", "t2", "shared", "i1", "i2", "c1", "c2"}
    assert text.rerank_query == "red dress" and not response.degradations
    assert {"merge", "clip_image", "clip_text"} <= {timing.stage for timing in response.timings}


async def test_hybrid_without_a_photo_uses_the_query_in_both_collections() -> None:
    response = await vision(FakeTextSearch(), FakeClip()).search_hybrid(HybridQuery("red dress", None, 10, "", {}))
    assert set(ids(response)) == {"t1", "t2", "shared", "c1", "c2"}


async def test_hybrid_answers_from_the_image_side_when_the_text_side_fails() -> None:
    response = await vision(FakeTextSearch(text_fails=True), FakeClip()).search_hybrid(
        HybridQuery("red dress", b"photo", 10, "", {})
    )
    assert set(ids(response)) == {"i1", "i2", "shared", "c1", "c2"}
    [lost] = response.degradations
    assert (lost.component, lost.fallback) == ("triton", "hybrid_without_text")
    assert lost.reason == Reason.DEGRADATION_REASON_INFERENCE_UNAVAILABLE
    assert lost.detail.startswith("text recall failed")


async def test_hybrid_answers_from_the_text_side_when_clip_fails() -> None:
    response = await vision(FakeTextSearch(), FakeClip(fails=True)).search_hybrid(
        HybridQuery("red dress", b"photo", 10, "", {})
    )
    assert set(ids(response)) == {"t1", "t2", "shared"}
    assert sorted(d.fallback for d in response.degradations) == ["hybrid_without_clip_text", "hybrid_without_image"]
    assert {d.component for d in response.degradations} == {"clip"}


async def test_a_lost_image_retrieval_says_it_timed_out() -> None:
    response = await vision(FakeTextSearch(milvus_fails_for="ann_image"), FakeClip()).search_hybrid(
        HybridQuery("red dress", b"photo", 10, "", {})
    )
    [lost] = response.degradations
    assert (lost.component, lost.fallback) == ("milvus", "hybrid_without_image")
    assert lost.reason == Reason.DEGRADATION_REASON_INFERENCE_TIMEOUT


async def test_hybrid_fails_only_when_every_list_fails() -> None:
    search = vision(FakeTextSearch(text_fails=True), FakeClip(fails=True))
    with pytest.raises(DependencyError):
        await search.search_hybrid(HybridQuery("red dress", b"photo", 10, "", {}))


async def test_a_clip_call_over_its_deadline_says_so() -> None:
    class SlowClip(FakeClip):
        async def embed_texts(self, texts: list[str]) -> np.ndarray:
            await asyncio.sleep(5)
            raise AssertionError("not reached")

    search = VisionSearch(
        SearchSettings.from_env({"SEARCH_CLIP_TIMEOUT_S": "0.05"}),
        FakeTextSearch(),  # type: ignore[arg-type]
        SlowClip(),  # type: ignore[arg-type]
        CircuitBreaker("clip", BreakerSettings()),
    )
    response = await search.search_hybrid(HybridQuery("red dress", None, 10, "", {}))
    [lost] = response.degradations
    assert lost.reason == Reason.DEGRADATION_REASON_INFERENCE_TIMEOUT
    assert lost.detail == "clip_text recall failed: clip: clip_text over its 0.05 s deadline"
