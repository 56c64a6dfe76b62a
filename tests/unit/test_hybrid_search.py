"""Hybrid search: the normalised weighted merge, and answers when a recall list fails."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import numpy as np
import pytest

from atelier.serving.article_index import Hit, IndexBinding
from atelier.serving.circuit_breaker import BreakerSettings
from atelier.serving.dependency import Dependency, DependencyError
from fashion.v1 import degradation_pb2
from services.search.answers import Answer, retrieval_order
from services.search.config import SearchSettings
from services.search.hybrid import RecallList, merge, normalised
from services.search.pipeline import SearchPipeline
from services.search.recall import (
    ClipTextRecall,
    HybridRecall,
    ImageRecall,
    Recall,
    Recalls,
    Retrieval,
    Side,
    TextRecall,
)
from services.search.rerank import Reranked
from services.search.validation import SearchQuery

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


TEXT_VECTOR, IMAGE_VECTOR, CLIP_TEXT_VECTOR = (np.eye(4, dtype=np.float32)[i] for i in range(3))
LISTS = {  # what the index holds nearest to each query vector
    0: hits(("t1", 0.9), ("shared", 0.8), ("t2", 0.1)),
    1: hits(("i1", 0.5), ("shared", 0.45), ("i2", 0.1)),
    2: hits(("c1", 0.3), ("shared", 0.28), ("c2", 0.1)),
}


class FakeMilvus:
    """Milvus' search over the three lists above; `fails_for` names the ANN stage that times out."""

    def __init__(self, fails_for: str = "") -> None:
        self.fails_for = fails_for

    async def search(self, collection: str, data: list[list[float]], **_: object) -> list[list[dict]]:
        which = int(np.argmax(data[0]))
        if {1: "ann_image", 2: "ann_clip_text"}.get(which) == self.fails_for:
            await asyncio.sleep(5)  # past the deadline
        return [[{"id": h.article_id, "distance": h.score, "entity": h.fields} for h in LISTS[which]]]


class FakeEncoder:
    """Triton's text embedding and CLIP's towers: one vector per input, each model its own (or down)."""

    def __init__(self, fails: bool = False, down: str = "down") -> None:
        self.fails, self.down = fails, down
        self.versions: list[int | None] = []  # the model version each call asked for

    def _vectors(self, vector: np.ndarray, n: int) -> np.ndarray:
        if self.fails:
            raise ConnectionError(self.down)
        return np.stack([vector] * n)

    async def embed_queries(self, texts: list[str], timeout_s: float | None = None, version: int | None = None):
        self.versions.append(version)
        return self._vectors(TEXT_VECTOR, len(texts))

    async def embed_images(self, images: list[bytes], timeout_s: float | None = None, version: int | None = None):
        self.versions.append(version)
        return self._vectors(IMAGE_VECTOR, len(images))

    async def embed_texts(self, texts: list[str], timeout_s: float | None = None, version: int | None = None):
        self.versions.append(version)
        return self._vectors(CLIP_TEXT_VECTOR, len(texts))


class FakeIndexes:
    """Each alias bound to the collection of that name, built by `versions[alias]` of its model."""

    def __init__(self, versions: dict[str, int | None]) -> None:
        self.versions = versions

    def current(self, alias: str) -> IndexBinding:
        return IndexBinding(alias, self.versions.get(alias))


class FakeRerank:
    """The rerank stage's surface: records the text it was asked to rerank by, keeps the order."""

    def __init__(self) -> None:
        self.rerank_query: str | None = None

    async def rerank(self, query: str, found: list[Hit]) -> Reranked:
        self.rerank_query = query
        return Reranked(retrieval_order(found), 0)


class Anonymous:
    def prefetch(self, user_id: str) -> None:
        return None


@dataclass
class Search:
    """The image and hybrid recalls, as search wires them, over fakes of their dependencies."""

    recalls: Recalls
    rerank: FakeRerank
    text_encoder: FakeEncoder
    clip: FakeEncoder

    async def image(self, query: SearchQuery) -> Answer:
        return await self._run(self.recalls.image, query)

    async def hybrid(self, query: SearchQuery) -> Answer:
        return await self._run(self.recalls.hybrid, query)

    async def _run(self, recall: Recall | None, query: SearchQuery) -> Answer:
        assert recall is not None
        pipeline = SearchPipeline(Anonymous(), None, 100, self.rerank)  # type: ignore[arg-type]
        return await pipeline.run(recall, query, rerank_by=query.query)


def search(
    text_fails: bool = False, clip_fails: bool = False, milvus_fails_for: str = "", clip_timeout_s: float = 1.0
) -> Search:
    breaker = BreakerSettings()
    retrieval = Retrieval(FakeMilvus(milvus_fails_for), Dependency("milvus", breaker, 0.5), 128)  # type: ignore[arg-type]
    indexes = FakeIndexes({"text": 3, "image": 2})
    text_encoder = FakeEncoder(text_fails)
    text = TextRecall(text_encoder, Dependency("triton", breaker, 1.0), retrieval, indexes, "text", 0)  # type: ignore[arg-type]
    clip, clip_model = FakeEncoder(clip_fails, "clip down"), Dependency("clip", breaker, clip_timeout_s)
    image = ImageRecall(clip, clip_model, retrieval, indexes, "image")  # type: ignore[arg-type]
    clip_text = ClipTextRecall(clip, clip_model, retrieval, indexes, "image")  # type: ignore[arg-type]
    settings = SearchSettings.from_env({})
    hybrid = HybridRecall(
        [
            Side("text", text, settings.hybrid.text_weight),
            Side("clip_text", clip_text, settings.hybrid.clip_text_weight),
            Side("image", image, settings.hybrid.image_weight, needs_image=True),
        ]
    )
    return Search(Recalls(text, image, hybrid), FakeRerank(), text_encoder, clip)


def query(text: str, image: bytes | None) -> SearchQuery:
    return SearchQuery(text, image, 10, "", {})


def ids(response: Answer) -> list[str]:
    return [result.article.article_id for result in response.results]


async def test_image_search_recalls_from_the_image_collection_without_rerank() -> None:
    text = search()
    response = await text.image(SearchQuery("", b"photo", 10, "", {}))
    assert ids(response) == ["i1", "shared", "i2"]
    assert text.rerank.rerank_query is None and not response.degradations


async def test_hybrid_merges_all_three_lists_and_reranks_by_the_query() -> None:
    text = search()
    response = await text.hybrid(query("red dress", b"photo"))
    # Each query embedded by the model version that built the collection it searches.
    assert text.text_encoder.versions == [3] and text.clip.versions == [2, 2]
    assert ids(response)[0] == "shared"  # found by all three lists
    assert set(ids(response)) == {"t1", "t2", "shared", "i1", "i2", "c1", "c2"}
    assert text.rerank.rerank_query == "red dress" and not response.degradations
    assert {"merge", "clip_image", "clip_text"} <= {stage for stage in response.timings}


async def test_hybrid_without_a_photo_uses_the_query_in_both_collections() -> None:
    response = await search().hybrid(query("red dress", None))
    assert set(ids(response)) == {"t1", "t2", "shared", "c1", "c2"}


async def test_hybrid_answers_from_the_image_side_when_the_text_side_fails() -> None:
    response = await search(text_fails=True).hybrid(query("red dress", b"photo"))
    assert set(ids(response)) == {"i1", "i2", "shared", "c1", "c2"}
    [lost] = response.degradations
    assert (lost.component, lost.fallback) == ("triton", "hybrid_without_text")
    assert lost.reason == Reason.DEGRADATION_REASON_INFERENCE_UNAVAILABLE
    assert lost.detail.startswith("text recall failed")


async def test_hybrid_answers_from_the_text_side_when_clip_fails() -> None:
    response = await search(clip_fails=True).hybrid(query("red dress", b"photo"))
    assert set(ids(response)) == {"t1", "t2", "shared"}
    assert sorted(d.fallback for d in response.degradations) == ["hybrid_without_clip_text", "hybrid_without_image"]
    assert {d.component for d in response.degradations} == {"clip"}


async def test_a_lost_image_retrieval_says_it_timed_out() -> None:
    response = await search(milvus_fails_for="ann_image").hybrid(query("red dress", b"photo"))
    [lost] = response.degradations
    assert (lost.component, lost.fallback) == ("milvus", "hybrid_without_image")
    assert lost.reason == Reason.DEGRADATION_REASON_INFERENCE_TIMEOUT


async def test_hybrid_fails_only_when_every_list_fails() -> None:
    hybrid = search(text_fails=True, clip_fails=True).recalls.hybrid
    assert hybrid is not None
    with pytest.raises(DependencyError):
        await hybrid(query("red dress", b"photo"), 100)


async def test_a_clip_call_over_its_deadline_says_so() -> None:
    class SlowClip(FakeEncoder):
        async def embed_texts(self, texts: list[str], timeout_s: float | None = None, version: int | None = None):
            await asyncio.sleep(5)
            raise AssertionError("not reached")

    slow = search(clip_timeout_s=0.05)
    slow.recalls.hybrid._sides[1].recall._clip = SlowClip()  # type: ignore[union-attr]
    response = await slow.hybrid(query("red dress", None))
    [lost] = response.degradations
    assert lost.reason == Reason.DEGRADATION_REASON_INFERENCE_TIMEOUT
    assert lost.detail == "clip_text recall failed: clip: clip_text over its 0.05 s deadline"
