"""Recall: the ways of finding a query's candidates, each behind one small interface.

  TextRecall      the query text (Triton text_embedding) in the text collection
  ImageRecall     the query photo (CLIP's image tower) in the image collection
  ClipTextRecall  the query text (CLIP's text tower) in the image collection
  HybridRecall    some of the above in parallel, merged (services/search/hybrid.py)

A recall that cannot answer raises DependencyError naming the component that failed; hybrid
recall leaves a failed list out and says so, and fails only when every list fails.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from pymilvus import AsyncMilvusClient

from atelier.inference.signatures import CLIP_IMAGE, CLIP_TEXT
from atelier.serving import article_index
from atelier.serving.article_index import Hit
from atelier.serving.dependency import Dependency, DependencyError
from atelier.serving.embedding import TextEmbedder
from atelier.serving.vision import ClipEncoder
from fashion.v1 import degradation_pb2
from services.search.answers import degradation, inference_reason
from services.search.embedding_cache import EmbeddingCache
from services.search.hybrid import RecallList, merge
from services.search.index_bindings import IndexBindings
from services.search.timings import stage
from services.search.validation import SearchQuery


@dataclass(frozen=True)
class Recalled:
    hits: list[Hit]
    # What a partial recall left out (hybrid search's failed lists).
    degradations: list[degradation_pb2.Degradation] = field(default_factory=list)


class Recall(Protocol):
    async def __call__(self, query: SearchQuery, limit: int) -> Recalled: ...


class Retrieval:
    """Milvus ANN search of one collection, behind Milvus' breaker and deadline."""

    def __init__(self, milvus: AsyncMilvusClient, dependency: Dependency, hnsw_ef: int) -> None:
        self._milvus = milvus
        self._dependency = dependency
        self._ef = hnsw_ef

    async def nearest(
        self, collection: str, vector: np.ndarray, filters: Mapping[str, Sequence[str]], limit: int
    ) -> list[Hit]:
        return await self._dependency.call(
            "retrieval",
            lambda timeout_s: article_index.search(
                self._milvus, collection, vector, limit=limit, filters=filters, timeout_s=timeout_s, ef=self._ef
            ),
        )


class TextRecall:
    """The query text embedded by the text_embedding version that built the text collection, searched there."""

    def __init__(
        self,
        embedder: TextEmbedder,
        triton: Dependency,
        retrieval: Retrieval,
        indexes: IndexBindings,
        alias: str,
        cache_size: int,
    ) -> None:
        self._retrieval = retrieval
        self._indexes = indexes
        self._alias = alias

        async def embed(key: tuple[int | None, str]) -> np.ndarray:
            version, text = key
            vectors = await triton.call(
                "embedding", lambda timeout_s: embedder.embed_queries([text], timeout_s, version)
            )
            return vectors[0]

        self._cache: EmbeddingCache[tuple[int | None, str]] = EmbeddingCache(cache_size, embed)

    async def __call__(self, query: SearchQuery, limit: int) -> Recalled:
        bound = self._indexes.current(self._alias)
        with stage("embed") as embedding:
            vector, cached = await self._cache.get((bound.model_version, query.query))
            if cached:
                embedding.rename("embed_cached")
        with stage("ann"):
            return Recalled(await self._retrieval.nearest(bound.collection, vector, query.filters, limit))


class _ClipRecall:
    """A CLIP tower's embedding of the query (by the CLIP version that built the image collection), then
    the image collection's nearest photos."""

    tower = ""  # the Triton model, which is also the embedding's stage name
    ann_stage = ""

    def __init__(
        self, clip: ClipEncoder, dependency: Dependency, retrieval: Retrieval, indexes: IndexBindings, alias: str
    ) -> None:
        self._clip = clip
        self._dependency = dependency
        self._retrieval = retrieval
        self._indexes = indexes
        self._alias = alias

    def _embed(self, query: SearchQuery, version: int | None) -> Callable[[float], Awaitable[np.ndarray]]:
        raise NotImplementedError

    async def __call__(self, query: SearchQuery, limit: int) -> Recalled:
        bound = self._indexes.current(self._alias)
        with stage(self.tower):
            vector = (await self._dependency.call(self.tower, self._embed(query, bound.model_version)))[0]
        with stage(self.ann_stage):
            return Recalled(await self._retrieval.nearest(bound.collection, vector, query.filters, limit))


class ImageRecall(_ClipRecall):
    tower = CLIP_IMAGE.model
    ann_stage = "ann_image"

    def _embed(self, query: SearchQuery, version: int | None) -> Callable[[float], Awaitable[np.ndarray]]:
        image = query.image or b""
        return lambda timeout_s: self._clip.embed_images([image], timeout_s, version)


class ClipTextRecall(_ClipRecall):
    tower = CLIP_TEXT.model
    ann_stage = "ann_clip_text"

    def _embed(self, query: SearchQuery, version: int | None) -> Callable[[float], Awaitable[np.ndarray]]:
        return lambda timeout_s: self._clip.embed_texts([query.query], timeout_s, version)


@dataclass(frozen=True)
class Side:
    """One list of a hybrid search: its name (in degradations: hybrid_without_<name>), recall and weight."""

    name: str
    recall: Recall
    weight: float
    needs_image: bool = False


class HybridRecall:
    def __init__(self, sides: Sequence[Side]) -> None:
        self._sides = tuple(sides)

    async def __call__(self, query: SearchQuery, limit: int) -> Recalled:
        sides = [side for side in self._sides if query.image is not None or not side.needs_image]
        outcomes = await asyncio.gather(*(side.recall(query, limit) for side in sides), return_exceptions=True)
        lists: dict[str, RecallList] = {}
        failures: list[tuple[str, DependencyError]] = []
        for side, outcome in zip(sides, outcomes, strict=True):
            if isinstance(outcome, DependencyError):
                failures.append((side.name, outcome))
            elif isinstance(outcome, BaseException):
                raise outcome
            else:
                lists[side.name] = RecallList(outcome.hits, side.weight)
        if not lists:
            raise failures[0][1]
        with stage("merge"):
            hits = merge(lists, limit)
        return Recalled(hits, [_lost_side(name, error) for name, error in failures])


@dataclass(frozen=True)
class Recalls:
    """The recall of each RPC; image and hybrid are None while vision is off."""

    text: Recall
    image: Recall | None = None
    hybrid: Recall | None = None


def _lost_side(name: str, error: DependencyError) -> degradation_pb2.Degradation:
    return degradation(
        inference_reason(error), error.component, f"hybrid_without_{name}", f"{name} recall failed: {error}"
    )
