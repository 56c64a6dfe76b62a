"""The rerank stage: the cross-encoder reorders the top M retrieved candidates.

Within its budget (the reranker dependency's deadline) it answers the candidates in
cross-encoder order; over budget, failed, or with the reranker's breaker open, it keeps
retrieval order and says why. Scores of (query, article) pairs are cached per reranker version
(a newly published version scores afresh), so a repeated query pays for new candidates only.

At most `max_in_flight` rerank calls run at once per search instance: under a load the
cross-encoder cannot keep up with, the extra searches keep retrieval order at once (capacity
rejected) instead of queueing in Triton, running over budget and opening the breaker for all.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from cachetools import LRUCache

from atelier.serving.article_index import Hit
from atelier.serving.articles import passage
from atelier.serving.dependency import Dependency, DependencyError
from atelier.serving.reranking import Reranker
from fashion.v1 import degradation_pb2
from services.search.answers import Candidate, Reason, degradation, inference_reason, retrieval_order

log = logging.getLogger(__name__)
FALLBACK = "ann_order"


def merge(hits: Sequence[Hit], scores: Sequence[float], k: int) -> list[Candidate]:
    """The first len(scores) hits in rerank order, then (when k asks for more) the next hits in
    retrieval order, their scores scaled to sit just below the last reranked one."""
    reranked = [Candidate(hit, float(score), float(score)) for hit, score in zip(hits, scores, strict=False)]
    reranked.sort(key=lambda candidate: -candidate.score)  # stable: ties keep retrieval order
    tail = hits[len(reranked) : max(k, len(reranked))]
    if not reranked or not tail:
        return reranked + retrieval_order(tail)
    floor = reranked[-1].score
    top = tail[0].score if tail[0].score > 0 else 1.0
    return reranked + [Candidate(hit, floor * max(hit.score, 0.0) / top * 0.999) for hit in tail]


class RerankStage:
    def __init__(
        self,
        reranker: Reranker,
        dependency: Dependency,
        candidates: int,
        cache_size: int,
        max_in_flight: int = 0,
        version: Callable[[], int | None] = lambda: None,
    ) -> None:
        """`max_in_flight` 0: no limit; the budget is `dependency`'s deadline; `version`: the reranker
        version serving now, which keys the score cache."""
        self._reranker = reranker
        self._dependency = dependency
        self._candidates = candidates
        self._scores: LRUCache[tuple[int | None, str, str], float] | None = (
            LRUCache(cache_size) if cache_size > 0 else None
        )
        self._version = version
        self._max_in_flight = max_in_flight
        self._in_flight = 0

    async def rerank(
        self, query: str, hits: Sequence[Hit], k: int
    ) -> tuple[list[Candidate], degradation_pb2.Degradation | None]:
        """The candidates in rerank order, or in retrieval order with the degradation saying why."""
        top = hits[: self._candidates]
        cache = self._scores if self._scores is not None else {}
        version = self._version()
        scores = [cache.get((version, query, hit.article_id)) for hit in top]
        missing = [i for i, score in enumerate(scores) if score is None]
        if missing:
            if self._max_in_flight and self._in_flight >= self._max_in_flight:
                busy = f"{self._in_flight} reranks already in flight"
                return retrieval_order(hits), self._lost(Reason.DEGRADATION_REASON_DOWNSTREAM_CAPACITY_REJECTED, busy)
            passages = [passage(top[i].fields) for i in missing]
            self._in_flight += 1
            try:
                fresh = await self._dependency.call(
                    "rerank", lambda timeout_s: self._reranker.score(query, passages, timeout_s)
                )
            except DependencyError as error:
                detail = (
                    f"over the {self._dependency.timeout_s * 1000:.0f} ms budget" if error.timed_out else error.detail
                )
                log.warning("rerank skipped", extra={"error": detail})
                return retrieval_order(hits), self._lost(inference_reason(error), detail)
            finally:
                self._in_flight -= 1
            for i, score in zip(missing, fresh, strict=True):
                scores[i] = float(score)
                cache[(version, query, top[i].article_id)] = float(score)
        return merge(hits, [float(s) for s in scores if s is not None], k), None

    def _lost(self, reason: int, detail: str) -> degradation_pb2.Degradation:
        return degradation(reason, self._dependency.name, FALLBACK, detail)
