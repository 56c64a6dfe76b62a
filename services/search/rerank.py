"""The rerank stage: the cross-encoder reorders the top candidates, as many as the load allows.

Full depth is the top `candidates` retrieved. Under load a search reranks fewer: as many from the top
as its budget (the reranker dependency's deadline, `planned_share` of it) leaves room for after the
pairs already in flight, at the cost per pair measured on recent calls, and no more than its share of
the reranker's pairs a second while other searches want them too (services/search/rerank_load.py).
A depth under `min_depth` is not worth a call: the search keeps retrieval order at once (shed), which
is a decision, not a failure, so the breaker never hears of it. Only calls that time out or fail count
against the reranker.

Scores of (query, article) pairs are cached per reranker version (a newly published version scores
afresh): a repeated query pays for new candidates only, and cached candidates below the planned depth
join it for free.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cachetools import LRUCache
from prometheus_client import Histogram

from atelier.serving.article_index import Hit
from atelier.serving.articles import passage
from atelier.serving.dependency import Dependency, DependencyError
from atelier.serving.model_readiness import Serving
from atelier.serving.reranking import Reranker
from fashion.v1 import degradation_pb2
from services.search.answers import Candidate, Reason, degradation, inference_reason, retrieval_order
from services.search.rerank_load import RerankLoad

log = logging.getLogger(__name__)
FALLBACK = "ann_order"
DEPTH = Histogram(
    "search_rerank_depth",
    "Candidates the cross-encoder reordered per search asking for a rerank (0: shed or failed).",
    buckets=(0, 10, 20, 30, 40, 50, 60, 80, 100, 200),
)


@dataclass(frozen=True)
class Reranked:
    candidates: list[Candidate]
    depth: int
    """Candidates reordered by the cross-encoder, from the top (0: retrieval order)."""
    degradation: degradation_pb2.Degradation | None = None


def merge(hits: Sequence[Hit], scores: Sequence[float]) -> list[Candidate]:
    """The first len(scores) hits in rerank order, then the other hits in retrieval order, their
    scores scaled to sit just below the last reranked one."""
    reranked = [Candidate(hit, float(score), float(score)) for hit, score in zip(hits, scores, strict=False)]
    reranked.sort(key=lambda candidate: -candidate.score)  # stable: ties keep retrieval order
    tail = hits[len(reranked) :]
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
        min_depth: int = 1,
        planned_share: float = 1.0,
        version: Callable[[], int | None] = lambda: None,
        load: RerankLoad | None = None,
        serving: Callable[[], Serving] = Serving,
    ) -> None:
        """The budget is `dependency`'s deadline; `version`: the reranker version serving now, which
        keys the score cache; `serving`: how Triton runs it (its instances each score a slice of a
        search's pairs at the same time)."""
        self._reranker = reranker
        self._dependency = dependency
        self._candidates = candidates
        self._min_depth = min_depth
        self._planned_s = dependency.timeout_s * planned_share
        self._scores: LRUCache[tuple[int | None, str, str], float] | None = (
            LRUCache(cache_size) if cache_size > 0 else None
        )
        self._version = version
        self._serving = serving
        self.load = load or RerankLoad()

    async def rerank(self, query: str, hits: Sequence[Hit]) -> Reranked:
        """The candidates with the top `depth` in rerank order, or all in retrieval order with the
        degradation saying why."""
        top = hits[: self._candidates]
        cache = self._scores if self._scores is not None else {}
        version = self._version()
        scores = [cache.get((version, query, hit.article_id)) for hit in top]
        self.load.arrive()
        depth, load = self._plan(scores)
        if depth < min(self._min_depth, len(top)):
            DEPTH.observe(0)
            shed = f"reranker busy: {load}, under the {self._min_depth}-candidate floor"
            return Reranked(
                retrieval_order(hits), 0, self._lost(Reason.DEGRADATION_REASON_DOWNSTREAM_CAPACITY_REJECTED, shed)
            )
        missing = [i for i in range(depth) if scores[i] is None]
        if missing:
            passages = [passage(top[i].fields) for i in missing]
            try:
                with self.load.call(len(missing)):
                    fresh = await self._dependency.call(
                        "rerank",
                        lambda timeout_s: self._reranker.score(query, passages, timeout_s, self._serving()),
                    )
            except DependencyError as error:
                detail = (
                    f"over the {self._dependency.timeout_s * 1000:.0f} ms budget" if error.timed_out else error.detail
                )
                log.warning("rerank skipped", extra={"error": detail})
                DEPTH.observe(0)
                return Reranked(retrieval_order(hits), 0, self._lost(inference_reason(error), detail))
            for i, score in zip(missing, fresh, strict=True):
                scores[i] = float(score)
                cache[(version, query, top[i].article_id)] = float(score)
        while depth < len(top) and scores[depth] is not None:  # cached ones below the plan cost nothing
            depth += 1
        DEPTH.observe(depth)
        ranked = merge(hits, [score for score in scores[:depth] if score is not None])
        if depth == len(top):
            return Reranked(ranked, depth)
        reduced = f"reranked the top {depth} of {len(top)} candidates: {load}"
        return Reranked(ranked, depth, self._lost(Reason.DEGRADATION_REASON_RERANK_DEPTH_REDUCED, reduced))

    def _plan(self, scores: Sequence[float | None]) -> tuple[int, str]:
        """How deep to rerank now: the longest prefix whose unscored pairs fit the planned budget after
        those in flight, and this search's share of the reranker; and the load that decided it, in words."""
        affordable = self.load.affordable_pairs(self._planned_s)
        share = self.load.share(len(scores), self._min_depth, self._planned_s)
        idle = self.load.pairs_in_flight == 0
        if affordable is None or share is None:  # nothing measured yet: one call at a time measures it
            return (len(scores), "cost not measured yet") if idle else (0, "cost not measured yet, a call in flight")
        allowed = min(affordable, share)
        if idle:
            # An idle reranker always takes a call at the floor, whatever the cost says: a cost learnt in a
            # burst would otherwise shed every search and never be measured again.
            allowed = max(allowed, self._min_depth)
        depth, unscored = 0, 0
        for score in scores:
            if score is None:
                if unscored >= allowed:
                    break
                unscored += 1
            depth += 1
        waited = self.load.calls_in_flight + 1
        call_ms = (self.load.planned_seconds(0, 1, waited) or 0.0) * 1000
        pair_ms = (self.load.planned_seconds_per_pair(waited) or 0.0) * 1000
        to_go_ms = self.load.seconds_to_go(waited) * 1000
        return depth, (
            f"{self.load.pairs_in_flight} pairs in flight ({to_go_ms:.0f} ms of work left) at "
            f"{call_ms:.1f} ms a call and {pair_ms:.2f} ms a pair leave room for "
            f"{max(affordable, 0)} new pairs in {self._planned_s * 1000:.0f} ms; this search's share of the "
            f"reranker is {max(share, 0)} pairs"
        )

    def _lost(self, reason: int, detail: str) -> degradation_pb2.Degradation:
        return degradation(reason, self._dependency.name, FALLBACK, detail)
