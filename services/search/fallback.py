"""When embedding or retrieval is unavailable, search answers with popular items instead of an
error: the features service's 24h -> 7d -> global list, filtered like the query, same shape,
with the degradation saying what failed and which tier answered.

The list is the same for every request, so it is kept for FRESH_S: a burst of fallbacks (an
outage under load) costs one call, not one per search. When the features service fails too, a
list up to STALE_S old answers, with a STALE_DATA_ALLOWED degradation saying how old.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence

import grpc

from fashion.v1 import degradation_pb2, features_service_pb2, search_service_pb2
from fashion.v1 import features_service_pb2_grpc as features_grpc
from services.search.text_search import failure_reason

log = logging.getLogger(__name__)
Reason = degradation_pb2.DegradationReason
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
    def __init__(self, features_address: str, timeout_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._channel = grpc.aio.insecure_channel(features_address)
        self._features = features_grpc.FeaturesServiceStub(self._channel)
        self._timeout_s = timeout_s
        self._clock = clock
        self._kept: tuple[float, features_service_pb2.ListPopularItemsResponse] | None = None

    async def _popular(self, k: int) -> tuple[features_service_pb2.ListPopularItemsResponse, float | None]:
        """(the popular list, its age in seconds when it is a stale copy, else None)."""
        size, now = max(k, FETCH), self._clock()
        keep = size == FETCH  # the usual request; larger ones are rare and always asked for
        if keep and self._kept is not None and now - self._kept[0] < FRESH_S:
            return self._kept[1], None
        try:
            reply = await self._features.ListPopularItems(
                features_service_pb2.ListPopularItemsRequest(window=features_service_pb2.POPULARITY_WINDOW_DAY, k=size),
                timeout=self._timeout_s,
            )
        except grpc.aio.AioRpcError:
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
        except grpc.aio.AioRpcError as error:
            log.warning("popular items not kept at start", extra={"error": str(error)})

    async def answer(
        self,
        k: int,
        filters: Mapping[str, Sequence[str]],
        component: str,
        detail: str,
        timed_out: bool,
        circuit_open: bool = False,
    ) -> search_service_pb2.SearchTextResponse:
        """Popular items in place of search results; raises grpc.aio.AioRpcError when they are unavailable too."""
        reply, stale_s = await self._popular(k)
        items = [item for item in reply.items if _matches(item.article, filters)][:k]
        degradations = [
            degradation_pb2.Degradation(
                reason=failure_reason(timed_out, circuit_open),
                component=component,
                fallback=f"popular_{WINDOW_NAMES.get(reply.window, 'unknown')}",
                detail=detail[:500],
            )
        ]
        if stale_s is not None:
            degradations.append(
                degradation_pb2.Degradation(
                    reason=Reason.DEGRADATION_REASON_STALE_DATA_ALLOWED,
                    component="features",
                    fallback="kept_popular_list",
                    detail=f"the features service failed too; popular items as read {stale_s:.0f} s ago",
                )
            )
        if not items:
            degradations.append(
                degradation_pb2.Degradation(
                    reason=Reason.DEGRADATION_REASON_EMPTY_RESULTS_ALLOWED,
                    component="features",
                    fallback="empty",
                    detail="no popular item matches the request",
                )
            )
        return search_service_pb2.SearchTextResponse(
            results=[
                search_service_pb2.SearchResult(article=item.article, score=item.score, rank=rank)
                for rank, item in enumerate(items, start=1)
            ],
            degradations=degradations,
        )

    async def close(self) -> None:
        await self._channel.close()
