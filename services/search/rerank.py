"""The rerank stage: the cross-encoder reorders the top M retrieved candidates.

Within its time budget it answers the candidates in cross-encoder order; over budget, failed,
or with the reranker's breaker open, it keeps retrieval order and says why. Scores of
(query, article) pairs are cached, so a repeated query pays for new candidates only.

At most `max_in_flight` rerank calls run at once per search instance: under a load the
cross-encoder cannot keep up with, the extra searches keep retrieval order at once (capacity
rejected) instead of queueing in Triton, running over budget and opening the breaker for all.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from atelier.offline.catalog.schema import Article
from atelier.serving import article_index
from atelier.serving.circuit_breaker import CircuitBreaker, CircuitOpen
from atelier.serving.reranking import Reranker
from fashion.v1 import degradation_pb2

log = logging.getLogger(__name__)
Reason = degradation_pb2.DegradationReason
COMPONENT = "reranker"


@dataclass(frozen=True)
class Candidate:
    hit: article_index.Hit
    score: float  # what later stages order by: the rerank score when reranked, else retrieval's
    rerank_score: float | None = None


def retrieval_order(hits: Sequence[article_index.Hit]) -> list[Candidate]:
    return [Candidate(hit, hit.score) for hit in hits]


def merge(hits: Sequence[article_index.Hit], scores: Sequence[float], k: int) -> list[Candidate]:
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


class ScoreCache:
    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._scores: OrderedDict[tuple[str, str], float] = OrderedDict()

    def get(self, query: str, article_id: str) -> float | None:
        score = self._scores.get((query, article_id))
        if score is not None:
            self._scores.move_to_end((query, article_id))
        return score

    def put(self, query: str, article_id: str, score: float) -> None:
        if self._capacity <= 0:
            return
        self._scores[(query, article_id)] = score
        self._scores.move_to_end((query, article_id))
        while len(self._scores) > self._capacity:
            self._scores.popitem(last=False)


def _degradation(reason: int, detail: str) -> degradation_pb2.Degradation:
    return degradation_pb2.Degradation(reason=reason, component=COMPONENT, fallback="ann_order", detail=detail[:500])


class RerankStage:
    def __init__(
        self,
        reranker: Reranker,
        candidates: int,
        budget_s: float,
        breaker: CircuitBreaker,
        cache_size: int,
        max_in_flight: int = 0,
    ) -> None:
        """`max_in_flight` 0: no limit."""
        self._reranker = reranker
        self._candidates = candidates
        self._budget_s = budget_s
        self._breaker = breaker
        self._cache = ScoreCache(cache_size)
        self._max_in_flight = max_in_flight
        self._in_flight = 0

    async def rerank(
        self, query: str, hits: Sequence[article_index.Hit], k: int
    ) -> tuple[list[Candidate], degradation_pb2.Degradation | None]:
        top = hits[: self._candidates]
        scores: list[float | None] = [self._cache.get(query, hit.article_id) for hit in top]
        missing = [i for i, score in enumerate(scores) if score is None]
        if missing:
            try:
                self._breaker.check()
            except CircuitOpen as error:
                open_reason = Reason.DEGRADATION_REASON_DOWNSTREAM_CIRCUIT_OPEN
                return retrieval_order(hits), _degradation(open_reason, str(error))
            if self._max_in_flight and self._in_flight >= self._max_in_flight:
                busy = Reason.DEGRADATION_REASON_DOWNSTREAM_CAPACITY_REJECTED
                return retrieval_order(hits), _degradation(busy, f"{self._in_flight} reranks already in flight")
            passages = [Article.from_fields(top[i].article_id, top[i].fields).text() for i in missing]
            self._in_flight += 1
            try:
                fresh = await asyncio.wait_for(
                    self._reranker.score(query, passages, timeout_s=self._budget_s), timeout=self._budget_s
                )
            except Exception as error:  # noqa: BLE001 - any failure means: keep retrieval order
                self._breaker.record(False)
                timed_out = isinstance(error, TimeoutError) or "deadline" in str(error).lower()
                reason = (
                    Reason.DEGRADATION_REASON_INFERENCE_TIMEOUT
                    if timed_out
                    else Reason.DEGRADATION_REASON_INFERENCE_UNAVAILABLE
                )
                detail = f"over the {self._budget_s * 1000:.0f} ms budget" if timed_out else f"failed: {error}"
                log.warning("rerank skipped", extra={"error": detail})
                return retrieval_order(hits), _degradation(reason, detail)
            finally:
                self._in_flight -= 1
            self._breaker.record(True)
            for i, score in zip(missing, fresh, strict=True):
                scores[i] = float(score)
                self._cache.put(query, top[i].article_id, float(score))
        return merge(hits, [float(s) for s in scores if s is not None], k), None
