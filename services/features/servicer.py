"""fashion.v1.FeaturesService: reads of the online feature store."""

from __future__ import annotations

import logging
import time

import grpc
import redis.asyncio as aioredis
from google.protobuf.timestamp_pb2 import Timestamp

from atelier.serving.articles import article_message
from atelier.serving.feature_store.reader import FeatureReader
from atelier.serving.ids import id_problem
from atelier.serving.rpc import FieldViolation, InvalidArgument, abort_invalid_argument
from fashion.v1 import features_pb2
from fashion.v1 import features_service_pb2 as pb
from fashion.v1 import features_service_pb2_grpc as pb_grpc
from services.features.config import FeaturesSettings

log = logging.getLogger(__name__)

WINDOW_TIERS = {
    pb.POPULARITY_WINDOW_UNSPECIFIED: None,
    pb.POPULARITY_WINDOW_HOUR: "1h",
    pb.POPULARITY_WINDOW_DAY: "24h",
    pb.POPULARITY_WINDOW_WEEK: "7d",
    pb.POPULARITY_WINDOW_GLOBAL: "global",
}
# Violations travel in the trailers, which clients cap (8 KiB by default).
MAX_REPORTED_VIOLATIONS = 10
TIER_WINDOWS = {tier: window for window, tier in WINDOW_TIERS.items() if tier}


def _timestamp(ms: int) -> Timestamp:
    stamp = Timestamp()
    stamp.FromMilliseconds(ms)
    return stamp


def _now_ms() -> int:
    return int(time.time() * 1000)


class FeaturesServicer(pb_grpc.FeaturesServiceServicer):
    def __init__(self, settings: FeaturesSettings, reader: FeatureReader) -> None:
        self._settings = settings
        self._reader = reader

    async def _unavailable(self, context: grpc.aio.ServicerContext, error: Exception) -> None:
        log.warning("feature store unavailable", extra={"error": str(error)})
        timed_out = isinstance(error, TimeoutError)
        code = grpc.StatusCode.DEADLINE_EXCEEDED if timed_out else grpc.StatusCode.UNAVAILABLE
        # The cause in words, never the client library's exception (logged above in full).
        await context.abort(code, f"feature store (redis) {'timed out' if timed_out else 'unavailable'}")

    async def GetUserFeatures(
        self, request: pb.GetUserFeaturesRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetUserFeaturesResponse:
        if problem := id_problem(request.user_id):
            await abort_invalid_argument(context, InvalidArgument([FieldViolation("user_id", problem)]))
        try:
            found = await self._reader.user_features(request.user_id, _now_ms())
        except (aioredis.RedisError, OSError) as error:
            await self._unavailable(context, error)
        features = features_pb2.UserFeatures(
            user_id=request.user_id,
            recent_clicks=[
                features_pb2.RecentClick(article_id=article_id, click_time=_timestamp(ms))
                for article_id, ms in found.recent_clicks
            ],
            category_affinities=[
                features_pb2.CategoryAffinity(category=category, score=score)
                for category, score in found.category_affinities.items()
            ],
        )
        if found.last_active_ms is not None:
            features.last_active_time.CopyFrom(_timestamp(found.last_active_ms))
        return pb.GetUserFeaturesResponse(user_features=features)

    async def BatchGetItemSignals(
        self, request: pb.BatchGetItemSignalsRequest, context: grpc.aio.ServicerContext
    ) -> pb.BatchGetItemSignalsResponse:
        limit = self._settings.max_batch_article_ids
        if len(request.article_ids) > limit:
            violation = FieldViolation("article_ids", f"at most {limit}, got {len(request.article_ids)}")
            await abort_invalid_argument(context, InvalidArgument([violation]))
        violations = [
            FieldViolation(f"article_ids[{i}]", problem)
            for i, article_id in enumerate(request.article_ids)
            if (problem := id_problem(article_id))
        ]
        if violations:
            await abort_invalid_argument(context, InvalidArgument(violations[:MAX_REPORTED_VIOLATIONS]))
        try:
            signals = await self._reader.item_signals(list(request.article_ids), _now_ms())
        except (aioredis.RedisError, OSError) as error:
            await self._unavailable(context, error)
        return pb.BatchGetItemSignalsResponse(
            item_signals=[
                features_pb2.ItemSignals(
                    article_id=s.article_id,
                    popularity_1h=s.popularity_1h,
                    popularity_24h=s.popularity_24h,
                    popularity_7d=s.popularity_7d,
                    click_score=s.click_score,
                )
                for s in signals
            ]
        )

    async def ListPopularItems(
        self, request: pb.ListPopularItemsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListPopularItemsResponse:
        violations = []
        k = request.k or self._settings.default_k
        if not 1 <= k <= self._settings.max_k:
            violations.append(FieldViolation("k", f"must be between 1 and {self._settings.max_k}, got {request.k}"))
        if request.window not in WINDOW_TIERS:
            violations.append(FieldViolation("window", f"unknown window {request.window}"))
        if violations:
            await abort_invalid_argument(context, InvalidArgument(violations))
        try:
            ranked, tier = await self._reader.popular(WINDOW_TIERS[request.window], k, _now_ms())
            metadata = await self._reader.items([article_id for article_id, _ in ranked])
        except (aioredis.RedisError, OSError) as error:
            await self._unavailable(context, error)
        return pb.ListPopularItemsResponse(
            items=[
                pb.PopularItem(article=article_message(article_id, metadata.get(article_id, {})), score=score)
                for article_id, score in ranked
            ],
            window=TIER_WINDOWS[tier],
        )
