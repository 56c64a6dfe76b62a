"""SearchText: embed the query, retrieve candidates from Milvus, answer the top k.

Its stages after recall (rerank, personalisation) answer image and hybrid search too
(services/search/vision_search.py), each bringing its own recall.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import numpy as np
from pymilvus import AsyncMilvusClient

from atelier.serving import article_index
from atelier.serving.article_proto import article_message
from atelier.serving.circuit_breaker import CircuitBreaker, CircuitOpen
from fashion.v1 import degradation_pb2, features_pb2, ranker_service_pb2, search_service_pb2
from services.search.config import SearchSettings
from services.search.embedding_cache import EmbeddingCache
from services.search.personalisation import Personaliser
from services.search.rerank import Candidate, RerankStage, retrieval_order
from services.search.validation import TextQuery


class DependencyError(RuntimeError):
    """A dependency failed; `component` names it (triton, milvus)."""

    def __init__(self, component: str, detail: str, timed_out: bool = False, circuit_open: bool = False) -> None:
        super().__init__(f"{component}: {detail}")
        self.component = component
        self.timed_out = timed_out
        self.circuit_open = circuit_open

    @classmethod
    def from_error(cls, component: str, doing: str, error: Exception) -> DependencyError:
        if isinstance(error, CircuitOpen):
            return cls(component, str(error), circuit_open=True)
        return cls(component, f"{doing} failed: {error}", timed_out=_is_timeout(error))


def failure_reason(timed_out: bool, circuit_open: bool) -> int:
    """The DegradationReason of a dependency that did not answer."""
    if circuit_open:
        return degradation_pb2.DegradationReason.DEGRADATION_REASON_DOWNSTREAM_CIRCUIT_OPEN
    if timed_out:
        return degradation_pb2.DegradationReason.DEGRADATION_REASON_INFERENCE_TIMEOUT
    return degradation_pb2.DegradationReason.DEGRADATION_REASON_INFERENCE_UNAVAILABLE


def _is_timeout(error: BaseException) -> bool:
    # tritonclient and pymilvus report deadlines in their own exception types.
    text = str(error).lower()
    return isinstance(error, TimeoutError) or "deadline" in text or "timeout" in text


@dataclass
class Timings:
    stages: dict[str, float] = field(default_factory=dict)

    def record(self, stage: str, started: float) -> None:
        self.stages[stage] = (time.perf_counter() - started) * 1000

    def as_proto(self) -> list[search_service_pb2.StageTiming]:
        return [search_service_pb2.StageTiming(stage=s, millis=ms) for s, ms in self.stages.items()]


@dataclass
class Answer:
    """What every kind of search answers, whatever its response message."""

    results: list[search_service_pb2.SearchResult]
    degradations: list[degradation_pb2.Degradation]
    timings: Timings


# One way of finding candidates: its hits, and how it was degraded (hybrid's lost sides).
Recall = Callable[[Timings], Awaitable[tuple[list[article_index.Hit], list[degradation_pb2.Degradation]]]]


class TextSearch:
    def __init__(
        self,
        settings: SearchSettings,
        embed_query: Callable[[str], Awaitable[np.ndarray]],
        milvus: AsyncMilvusClient,
        personaliser: Personaliser,
        milvus_breaker: CircuitBreaker,
        rerank: RerankStage | None,
    ) -> None:
        self._settings = settings
        self._cache = EmbeddingCache(settings.embedding_cache_size, embed_query)
        self._milvus = milvus
        self._personaliser = personaliser
        self._milvus_breaker = milvus_breaker
        self._rerank = rerank

    async def search(self, query: TextQuery) -> search_service_pb2.SearchTextResponse:
        async def recall(timings: Timings) -> tuple[list[article_index.Hit], list[degradation_pb2.Degradation]]:
            limit = max(query.k, self._settings.candidates)
            return await self.recall_text(query.query, query.filters, limit, timings), []

        answer = await self.answer(recall, query.query, query.k, query.user_id)
        return search_service_pb2.SearchTextResponse(
            results=answer.results, degradations=answer.degradations, timings=answer.timings.as_proto()
        )

    async def answer(self, recall: Recall, rerank_query: str | None, k: int, user_id: str) -> Answer:
        """Recall candidates, rerank them by `rerank_query` (none: keep recall's order), personalise for the user."""
        timings = Timings()
        # Anonymous searches are never personalised: no call to make.
        user_features = self._personaliser.fetch_user_features(user_id) if user_id else None
        try:
            hits, degradations = await recall(timings)
            return await self._finish(hits, degradations, rerank_query, k, user_id, user_features, timings)
        finally:
            if user_features is not None and not user_features.done():
                user_features.cancel()

    async def recall_text(
        self, text: str, filters: dict[str, list[str]], limit: int, timings: Timings
    ) -> list[article_index.Hit]:
        """The text collection's nearest articles to the query text (DependencyError when it cannot answer)."""
        started = time.perf_counter()
        try:
            vector, cached = await self._cache.get(text)
        except Exception as error:
            raise DependencyError.from_error("triton", "embedding", error) from error
        timings.record("embed_cached" if cached else "embed", started)
        return await self.retrieve(self._settings.collection, vector, filters, limit, timings, "ann")

    async def retrieve(
        self,
        collection: str,
        vector: np.ndarray,
        filters: dict[str, list[str]],
        limit: int,
        timings: Timings,
        stage: str,
    ) -> list[article_index.Hit]:
        """ANN search of one collection, behind Milvus' breaker and deadline."""
        started = time.perf_counter()
        try:
            self._milvus_breaker.check()
            # pymilvus' own timeout does not bound every wait (a hung server); this does.
            hits = await asyncio.wait_for(
                article_index.search(
                    self._milvus,
                    collection,
                    vector,
                    limit=limit,
                    filters=filters,
                    timeout_s=self._settings.ann_timeout_s,
                    ef=self._settings.hnsw_ef,
                ),
                timeout=self._settings.ann_timeout_s,
            )
            self._milvus_breaker.record(True)
        except CircuitOpen as error:
            raise DependencyError.from_error("milvus", "retrieval", error) from error
        except Exception as error:
            self._milvus_breaker.record(False)
            raise DependencyError.from_error("milvus", "retrieval", error) from error
        timings.record(stage, started)
        return hits

    async def _finish(
        self,
        hits: list[article_index.Hit],
        degradations: list[degradation_pb2.Degradation],
        rerank_query: str | None,
        k: int,
        user_id: str,
        user_features: asyncio.Task[features_pb2.UserFeatures] | None,
        timings: Timings,
    ) -> Answer:
        degradations = list(degradations)
        candidates = retrieval_order(hits)
        if self._rerank is not None and rerank_query and hits:
            started = time.perf_counter()
            candidates, degradation = await self._rerank.rerank(rerank_query, hits, k)
            timings.record("rerank", started)
            if degradation is not None:
                degradations.append(degradation)
        results = [result_message(candidate, rank) for rank, candidate in enumerate(candidates[:k], start=1)]
        if user_features is not None and candidates:
            started = time.perf_counter()
            personalised = await self._personaliser.rank(user_id, user_features, candidates, k)
            timings.record("personalise", started)
            degradations += personalised.degradations
            if personalised.order is not None:
                by_id = {candidate.hit.article_id: candidate for candidate in candidates}
                results = [personalised_result(by_id[item.article_id], item) for item in personalised.order]
        return Answer(results, degradations, timings)


def result_message(candidate: Candidate, rank: int) -> search_service_pb2.SearchResult:
    hit = candidate.hit
    result = search_service_pb2.SearchResult(
        article=article_message(hit.article_id, hit.fields),
        score=candidate.score,
        rank=rank,
        retrieval_score=hit.score,
    )
    if candidate.rerank_score is not None:
        result.rerank_score = candidate.rerank_score
    return result


def personalised_result(candidate: Candidate, item: ranker_service_pb2.RankedItem) -> search_service_pb2.SearchResult:
    result = result_message(candidate, item.rank)
    result.score = item.score
    if item.behaviour_score:
        result.behaviour_score = item.behaviour_score
    return result
