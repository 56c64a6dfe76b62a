"""SearchText: embed the query, retrieve candidates from Milvus, answer the top k."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import numpy as np
from pymilvus import AsyncMilvusClient

from atelier import article_index
from atelier.article_proto import article_message
from fashion.v1 import search_service_pb2
from services.search.config import SearchSettings
from services.search.embedding_cache import EmbeddingCache
from services.search.validation import TextQuery


class DependencyError(RuntimeError):
    """A dependency failed; `component` names it (triton, milvus)."""

    def __init__(self, component: str, detail: str, timed_out: bool = False) -> None:
        super().__init__(f"{component}: {detail}")
        self.component = component
        self.timed_out = timed_out


@dataclass
class Timings:
    stages: dict[str, float] = field(default_factory=dict)

    def record(self, stage: str, started: float) -> None:
        self.stages[stage] = (time.perf_counter() - started) * 1000

    def as_proto(self) -> list[search_service_pb2.StageTiming]:
        return [search_service_pb2.StageTiming(stage=s, millis=ms) for s, ms in self.stages.items()]


class TextSearch:
    def __init__(
        self,
        settings: SearchSettings,
        embed_query: Callable[[str], Awaitable[np.ndarray]],
        milvus: AsyncMilvusClient,
    ) -> None:
        self._settings = settings
        self._cache = EmbeddingCache(settings.embedding_cache_size, embed_query)
        self._milvus = milvus

    async def search(self, query: TextQuery) -> search_service_pb2.SearchTextResponse:
        timings = Timings()
        started = time.perf_counter()
        try:
            vector, cached = await self._cache.get(query.query)
        except TimeoutError as error:
            raise DependencyError("triton", f"embedding timed out: {error}", timed_out=True) from error
        except Exception as error:
            raise DependencyError("triton", f"embedding failed: {error}") from error
        timings.record("embed_cached" if cached else "embed", started)

        started = time.perf_counter()
        try:
            hits = await article_index.search(
                self._milvus,
                self._settings.collection,
                vector,
                limit=max(query.k, self._settings.candidates),
                filters=query.filters,
                timeout_s=self._settings.ann_timeout_s,
                ef=self._settings.hnsw_ef,
            )
        except Exception as error:
            raise DependencyError("milvus", f"retrieval failed: {error}") from error
        timings.record("ann", started)

        results = [
            search_service_pb2.SearchResult(
                article=article_message(hit.article_id, hit.fields),
                score=hit.score,
                rank=rank,
                retrieval_score=hit.score,
            )
            for rank, hit in enumerate(hits[: query.k], start=1)
        ]
        return search_service_pb2.SearchTextResponse(results=results, timings=timings.as_proto())
