"""Personalisation in search: the user's features (fetched while the query is embedded and
retrieved), the candidates' popularity signals, then the ranker's order of the (reranked)
candidates.

A failed or slow dependency never fails the search: the answer comes back in
retrieval order, unpersonalised, with a degradation naming the component.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import grpc

from atelier.serving.circuit_breaker import BreakerSettings, CircuitBreaker, CircuitOpen
from fashion.v1 import degradation_pb2, features_pb2, features_service_pb2, ranker_service_pb2
from fashion.v1 import features_service_pb2_grpc as features_grpc
from fashion.v1 import ranker_service_pb2_grpc as ranker_grpc
from services.search.rerank import Candidate

log = logging.getLogger(__name__)
Reason = degradation_pb2.DegradationReason


@dataclass
class Personalised:
    """The candidates' final order and scores; `degradations` says what was skipped and why."""

    order: list[ranker_service_pb2.RankedItem] | None = None
    degradations: list[degradation_pb2.Degradation] = field(default_factory=list)


def _degradation(component: str, fallback: str, error: BaseException) -> degradation_pb2.Degradation:
    timed_out = isinstance(error, TimeoutError) or (
        isinstance(error, grpc.aio.AioRpcError) and error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    )
    reason = (
        Reason.DEGRADATION_REASON_DOWNSTREAM_CIRCUIT_OPEN
        if isinstance(error, CircuitOpen)
        else Reason.DEGRADATION_REASON_PERSONALIZATION_UNAVAILABLE
    )
    detail = error.details() if isinstance(error, grpc.aio.AioRpcError) else str(error)
    return degradation_pb2.Degradation(
        reason=reason,
        component=component,
        fallback=fallback,
        detail=f"{'timed out' if timed_out else 'failed'}: {detail}"[:500],
    )


class Personaliser:
    def __init__(self, features_address: str, ranker_address: str, timeout_s: float, breaker: BreakerSettings) -> None:
        self._features_breaker = CircuitBreaker("features", breaker)
        self._ranker_breaker = CircuitBreaker("ranker", breaker)
        self._features_channel = grpc.aio.insecure_channel(features_address)
        self._ranker_channel = grpc.aio.insecure_channel(ranker_address)
        self._features = features_grpc.FeaturesServiceStub(self._features_channel)
        self._ranker = ranker_grpc.RankerServiceStub(self._ranker_channel)
        self._timeout_s = timeout_s

    def fetch_user_features(self, user_id: str) -> asyncio.Task[features_pb2.UserFeatures]:
        """Starts reading the user's features; await the task after retrieval."""

        async def fetch() -> features_pb2.UserFeatures:
            reply = await self._features.GetUserFeatures(
                features_service_pb2.GetUserFeaturesRequest(user_id=user_id), timeout=self._timeout_s
            )
            return reply.user_features

        return asyncio.create_task(fetch())

    async def rank(
        self,
        user_id: str,
        user_features: asyncio.Task[features_pb2.UserFeatures],
        candidates: Sequence[Candidate],
        k: int,
    ) -> Personalised:
        outcome = Personalised()
        try:
            self._features_breaker.check()
        except CircuitOpen as error:
            user_features.cancel()
            outcome.degradations.append(_degradation("features", "unpersonalised", error))
            return outcome
        signals_call = self._features.BatchGetItemSignals(
            features_service_pb2.BatchGetItemSignalsRequest(article_ids=[c.hit.article_id for c in candidates]),
            timeout=self._timeout_s,
        )
        features, signals = await asyncio.gather(user_features, signals_call, return_exceptions=True)
        failed = isinstance(features, BaseException) or isinstance(signals, BaseException)
        self._features_breaker.record(not failed)
        if failed:
            error = features if isinstance(features, BaseException) else signals
            log.warning("personalisation skipped: features unavailable", extra={"error": str(error)})
            outcome.degradations.append(_degradation("features", "unpersonalised", error))
            return outcome
        request = ranker_service_pb2.RankRequest(
            user_id=user_id,
            candidates=[
                ranker_service_pb2.RankCandidate(
                    article_id=c.hit.article_id, category=c.hit.fields.get("product_type", ""), score=c.score
                )
                for c in candidates
            ],
            user_features=features,
            item_signals=signals.item_signals,
            k=k,
        )
        try:
            self._ranker_breaker.check()
            reply = await self._ranker.Rank(request, timeout=self._timeout_s)
        except (grpc.aio.AioRpcError, CircuitOpen) as error:
            if not isinstance(error, CircuitOpen):
                self._ranker_breaker.record(False)
            log.warning("personalisation skipped: ranker unavailable", extra={"error": str(error)})
            outcome.degradations.append(_degradation("ranker", "retrieval_order", error))
            return outcome
        self._ranker_breaker.record(True)
        outcome.order = list(reply.items)
        return outcome

    async def close(self) -> None:
        await self._features_channel.close()
        await self._ranker_channel.close()
