"""When recall is unavailable (embedding or retrieval down or slow), search answers with popular
items instead of an error: the features service's 24h -> 7d -> global list, filtered like the
query, same shape, with the degradation saying what failed and which tier answered.

The list is the same for every request, so it is kept for FRESH_S: a burst of fallbacks (an
outage under load) costs one call, not one per search. When the features service fails too, a
list up to STALE_S old answers, with a STALE_DATA_ALLOWED degradation saying how old.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence

from atelier.serving.dependency import Dependency, DependencyError
from fashion.v1 import features_service_pb2, search_service_pb2
from fashion.v1 import features_service_pb2_grpc as features_grpc
from services.search.answers import Answer, Reason, degradation, inference_reason

log = logging.getLogger(__name__)
WINDOW_NAMES = {
    features_service_pb2.POPULARITY_WINDOW_HOUR: "1h",
    features_service_pb2.POPULARITY_WINDOW_DAY: "24h",
    features_service_pb2.POPULARITY_WINDOW_WEEK: "7d",
    features_service_pb2.POPULARITY_WINDOW_GLOBAL: "global",
}
# Popular items are fetched in bulk so that a filter still leaves k of them.
FETCH = 100
FRESH_S = 5.0
STALE_S = 600.0


def _matches(article: object, filters: Mapping[str, Sequence[str]]) -> bool:
    return all(not values or getattr(article, attribute) in values for attribute, values in filters.items())


class PopularFallback:
    def __init__(
        self,
        features_stub: features_grpc.FeaturesServiceStub,
        features: Dependency,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stub = features_stub
        self._features = features
        self._clock = clock
        self._kept: tuple[float, features_service_pb2.ListPopularItemsResponse] | None = None

    async def _popular(self, k: int) -> tuple[features_service_pb2.ListPopularItemsResponse, float | None]:
        """(the popular list, its age in seconds when it is a stale copy, else None)."""
        size, now = max(k, FETCH), self._clock()
        keep = size == FETCH  # the usual request; larger ones are rare and always asked for
        if keep and self._kept is not None and now - self._kept[0] < FRESH_S:
            return self._kept[1], None
        request = features_service_pb2.ListPopularItemsRequest(
            window=features_service_pb2.POPULARITY_WINDOW_DAY, k=size
        )
        try:
            reply = await self._features.call(
                "popular items", lambda timeout_s: self._stub.ListPopularItems(request, timeout=timeout_s)
            )
        except DependencyError:
            if keep and self._kept is not None and now - self._kept[0] < STALE_S:
                return self._kept[1], now - self._kept[0]
            raise
        if keep:
            self._kept = (now, reply)
        return reply, None

    async def warm(self) -> None:
        """Fetches and keeps the popular list now, so that the first fallback under overload has a
        copy to serve when the features service does not answer in time; best effort."""
        try:
            await self._popular(FETCH)
        except DependencyError as error:
            log.warning("popular items not kept at start", extra={"error": str(error)})

    async def answer(self, k: int, filters: Mapping[str, Sequence[str]], failed: DependencyError) -> Answer:
        """Popular items in place of search results; raises DependencyError when they are unavailable too."""
        reply, stale_s = await self._popular(k)
        items = [item for item in reply.items if _matches(item.article, filters)][:k]
        fallback = f"popular_{WINDOW_NAMES.get(reply.window, 'unknown')}"
        degradations = [degradation(inference_reason(failed), failed.component, fallback, str(failed))]
        if stale_s is not None:
            degradations.append(
                degradation(
                    Reason.DEGRADATION_REASON_STALE_DATA_ALLOWED,
                    self._features.name,
                    "kept_popular_list",
                    f"the features service failed too; popular items as read {stale_s:.0f} s ago",
                )
            )
        if not items:
            degradations.append(
                degradation(
                    Reason.DEGRADATION_REASON_EMPTY_RESULTS_ALLOWED,
                    self._features.name,
                    "empty",
                    "no popular item matches the request",
                )
            )
        results = [
            search_service_pb2.SearchResult(article=item.article, score=item.score, rank=rank)
            for rank, item in enumerate(items, start=1)
        ]
        return Answer(results, degradations)
