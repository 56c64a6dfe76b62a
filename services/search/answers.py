"""What a search answers: its candidates, their result messages, and the degradations that say
what was left out and why (from a DependencyError's component and failure)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from atelier.serving.article_index import Hit
from atelier.serving.articles import article_message
from atelier.serving.dependency import DependencyError, Failure
from fashion.v1 import degradation_pb2, ranker_service_pb2, search_service_pb2

Reason = degradation_pb2.DegradationReason
MAX_DETAIL_CHARS = 500


@dataclass(frozen=True)
class Candidate:
    hit: Hit
    score: float  # what later stages order by: the rerank score when reranked, else retrieval's
    rerank_score: float | None = None


def retrieval_order(hits: Sequence[Hit]) -> list[Candidate]:
    return [Candidate(hit, hit.score) for hit in hits]


@dataclass
class Answer:
    """Every kind of search's answer, whatever its response message."""

    results: list[search_service_pb2.SearchResult]
    degradations: list[degradation_pb2.Degradation] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    rerank_depth: int = 0


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


def inference_reason(error: DependencyError) -> int:
    """The reason for a model or retrieval call (Triton, Milvus) that did not answer."""
    if error.failure is Failure.CIRCUIT_OPEN:
        return Reason.DEGRADATION_REASON_DOWNSTREAM_CIRCUIT_OPEN
    if error.failure is Failure.NOT_READY:
        return Reason.DEGRADATION_REASON_MODEL_NOT_READY
    if error.failure is Failure.TIMED_OUT:
        return Reason.DEGRADATION_REASON_INFERENCE_TIMEOUT
    return Reason.DEGRADATION_REASON_INFERENCE_UNAVAILABLE


def reason_label(reason: int) -> str:
    """A reason as metrics label it: DEGRADATION_REASON_INFERENCE_TIMEOUT is `inference_timeout`."""
    return Reason.Name(reason).removeprefix("DEGRADATION_REASON_").lower()


def degradation(reason: int, component: str, fallback: str, detail: str) -> degradation_pb2.Degradation:
    return degradation_pb2.Degradation(
        reason=reason, component=component, fallback=fallback, detail=detail[:MAX_DETAIL_CHARS]
    )
