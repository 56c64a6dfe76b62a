"""The personalise stage: the user's features (fetched while the query is recalled), the
candidates' popularity signals, then the ranker's order of the (reranked) candidates.

A failed or slow dependency never fails the search: the answer keeps its order, unpersonalised,
with a degradation naming the component.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from atelier.serving.articles import category
from atelier.serving.dependency import Dependency, DependencyError
from fashion.v1 import degradation_pb2, features_pb2, features_service_pb2, ranker_service_pb2
from fashion.v1 import features_service_pb2_grpc as features_grpc
from fashion.v1 import ranker_service_pb2_grpc as ranker_grpc
from services.search.answers import Candidate, Reason, degradation

log = logging.getLogger(__name__)


@dataclass
class Personalised:
    """The candidates' final order and scores; `degradations` says what was skipped and why."""

    order: list[ranker_service_pb2.RankedItem] | None = None
    degradations: list[degradation_pb2.Degradation] = field(default_factory=list)


def _lost(error: DependencyError, fallback: str) -> degradation_pb2.Degradation:
    reason = (
        Reason.DEGRADATION_REASON_DOWNSTREAM_CIRCUIT_OPEN
        if error.circuit_open
        else Reason.DEGRADATION_REASON_PERSONALIZATION_UNAVAILABLE
    )
    return degradation(
        reason, error.component, fallback, f"{'timed out' if error.timed_out else 'failed'}: {error.detail}"
    )


@dataclass(frozen=True)
class Personaliser:
    features_stub: features_grpc.FeaturesServiceStub
    features: Dependency
    ranker_stub: ranker_grpc.RankerServiceStub
    ranker: Dependency

    def prefetch(self, user_id: str) -> asyncio.Task[features_pb2.UserFeatures] | None:
        """Starts reading the user's features (await the task after recall); None for an anonymous search."""
        if not user_id:
            return None
        request = features_service_pb2.GetUserFeaturesRequest(user_id=user_id)

        async def fetch() -> features_pb2.UserFeatures:
            reply = await self.features.call(
                "user features", lambda timeout_s: self.features_stub.GetUserFeatures(request, timeout=timeout_s)
            )
            return reply.user_features

        task = asyncio.create_task(fetch())
        # A search that never gets to personalise (its recall failed) does not await it.
        task.add_done_callback(lambda done: done.cancelled() or done.exception())
        return task

    async def rank(
        self,
        user_id: str,
        user_features: asyncio.Task[features_pb2.UserFeatures],
        candidates: Sequence[Candidate],
        k: int,
    ) -> Personalised:
        signals_request = features_service_pb2.BatchGetItemSignalsRequest(
            article_ids=[c.hit.article_id for c in candidates]
        )
        signals_call = self.features.call(
            "item signals",
            lambda timeout_s: self.features_stub.BatchGetItemSignals(signals_request, timeout=timeout_s),
        )
        features, signals = await asyncio.gather(user_features, signals_call, return_exceptions=True)
        for outcome in (features, signals):
            if isinstance(outcome, DependencyError):
                log.warning("personalisation skipped: features unavailable", extra={"error": str(outcome)})
                return Personalised(degradations=[_lost(outcome, "unpersonalised")])
            if isinstance(outcome, BaseException):
                raise outcome
        request = ranker_service_pb2.RankRequest(
            user_id=user_id,
            candidates=[
                ranker_service_pb2.RankCandidate(
                    article_id=c.hit.article_id, category=category(c.hit.fields), score=c.score
                )
                for c in candidates
            ],
            user_features=features,
            item_signals=signals.item_signals,
            k=k,
        )
        try:
            reply = await self.ranker.call("rank", lambda timeout_s: self.ranker_stub.Rank(request, timeout=timeout_s))
        except DependencyError as error:
            log.warning("personalisation skipped: ranker unavailable", extra={"error": str(error)})
            return Personalised(degradations=[_lost(error, "retrieval_order")])
        return Personalised(order=list(reply.items))
