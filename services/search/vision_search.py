"""SearchImage and SearchHybrid: CLIP recall from the image collection, then the text search's
rerank and personalisation stages.

Image search: the photo through CLIP's image tower, nearest article photos. No query text, so
no cross-encoder rerank (it scores text pairs). Hybrid search: up to three recall lists in
parallel (the query text in the text collection; the query text through CLIP's text tower and
the photo through its image tower, both in the image collection), merged by weight
(services/search/hybrid.py), then reranked by the query text. A list that fails is left out
and said so; only when every list fails does the search fail (and the popular fallback answer).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import numpy as np

from atelier.serving import article_index
from atelier.serving.circuit_breaker import CircuitBreaker, CircuitOpen
from atelier.serving.vision import ClipEncoder
from fashion.v1 import degradation_pb2, search_service_pb2
from services.search.config import SearchSettings
from services.search.hybrid import RecallList, merge
from services.search.text_search import Answer, DependencyError, TextSearch, Timings, failure_reason
from services.search.validation import HybridQuery, ImageQuery

COMPONENT = "clip"
TEXT, CLIP_TEXT, IMAGE = "text", "clip_text", "image"


class VisionSearch:
    def __init__(
        self, settings: SearchSettings, text_search: TextSearch, clip: ClipEncoder, clip_breaker: CircuitBreaker
    ) -> None:
        self._settings = settings
        self._text = text_search
        self._clip = clip
        self._breaker = clip_breaker

    async def search_image(self, query: ImageQuery) -> search_service_pb2.SearchImageResponse:
        async def recall(timings: Timings) -> tuple[list[article_index.Hit], list[degradation_pb2.Degradation]]:
            return await self._recall_image(query.image, query.filters, self._limit(query.k), timings), []

        answer = await self._text.answer(recall, None, query.k, query.user_id)
        return search_service_pb2.SearchImageResponse(**_fields(answer))

    async def search_hybrid(self, query: HybridQuery) -> search_service_pb2.SearchHybridResponse:
        limit = self._limit(query.k)
        settings = self._settings

        async def recall(timings: Timings) -> tuple[list[article_index.Hit], list[degradation_pb2.Degradation]]:
            sides: dict[str, tuple[float, Awaitable[list[article_index.Hit]]]] = {
                TEXT: (settings.hybrid_text_weight, self._text.recall_text(query.query, query.filters, limit, timings)),
                CLIP_TEXT: (settings.hybrid_clip_text_weight, self._recall_clip_text(query, limit, timings)),
            }
            if query.image is not None:
                image = self._recall_image(query.image, query.filters, limit, timings)
                sides[IMAGE] = (settings.hybrid_image_weight, image)
            outcomes = await asyncio.gather(*(side for _, side in sides.values()), return_exceptions=True)
            lists: dict[str, RecallList] = {}
            failures: list[tuple[str, DependencyError]] = []
            for (name, (weight, _)), outcome in zip(sides.items(), outcomes, strict=True):
                if isinstance(outcome, DependencyError):
                    failures.append((name, outcome))
                elif isinstance(outcome, BaseException):
                    raise outcome
                else:
                    lists[name] = RecallList(outcome, weight)
            if not lists:
                raise failures[0][1]
            started = time.perf_counter()
            hits = merge(lists, limit)
            timings.record("merge", started)
            return hits, [_lost_side(name, error) for name, error in failures]

        answer = await self._text.answer(recall, query.query, query.k, query.user_id)
        return search_service_pb2.SearchHybridResponse(**_fields(answer))

    def _limit(self, k: int) -> int:
        return max(k, self._settings.candidates)

    async def _recall_image(
        self, image: bytes, filters: dict[str, list[str]], limit: int, timings: Timings
    ) -> list[article_index.Hit]:
        vector = await self._embed("clip_image", lambda: self._clip.embed_images([image]), timings)
        return await self._text.retrieve(self._settings.image_collection, vector, filters, limit, timings, "ann_image")

    async def _recall_clip_text(self, query: HybridQuery, limit: int, timings: Timings) -> list[article_index.Hit]:
        vector = await self._embed("clip_text", lambda: self._clip.embed_texts([query.query]), timings)
        collection = self._settings.image_collection
        return await self._text.retrieve(collection, vector, query.filters, limit, timings, "ann_clip_text")

    async def _embed(self, stage: str, call: Callable[[], Awaitable[np.ndarray]], timings: Timings) -> np.ndarray:
        started = time.perf_counter()
        try:
            self._breaker.check()
        except CircuitOpen as error:
            raise DependencyError.from_error(COMPONENT, stage, error) from error
        timeout_s = self._settings.clip_timeout_s
        try:
            vectors = await asyncio.wait_for(call(), timeout=timeout_s)
        except TimeoutError as error:
            self._breaker.record(False)
            raise DependencyError(COMPONENT, f"{stage} over its {timeout_s:g} s deadline", timed_out=True) from error
        except Exception as error:
            self._breaker.record(False)
            raise DependencyError.from_error(COMPONENT, stage, error) from error
        self._breaker.record(True)
        timings.record(stage, started)
        return vectors[0]


def _lost_side(name: str, error: DependencyError) -> degradation_pb2.Degradation:
    return degradation_pb2.Degradation(
        reason=failure_reason(error.timed_out, error.circuit_open),
        component=error.component,
        fallback=f"hybrid_without_{name}",
        detail=f"{name} recall failed: {error}"[:500],
    )


def _fields(answer: Answer) -> dict[str, object]:
    return {"results": answer.results, "degradations": answer.degradations, "timings": answer.timings.as_proto()}
