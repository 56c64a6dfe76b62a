"""The features service (FeaturesService and EventsService): `python -m services.features`."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

import grpc
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from atelier.serving import redis_clients
from atelier.serving.feature_store.reader import FeatureReader
from atelier.serving.grpc_server import serve
from fashion.v1 import events_service_pb2, events_service_pb2_grpc, features_service_pb2
from fashion.v1 import features_service_pb2_grpc as pb_grpc
from services.features.config import FeaturesSettings
from services.features.events import EventsServicer
from services.features.publisher import ClickPublisher
from services.features.servicer import FeaturesServicer

SERVICE_NAMES = (
    features_service_pb2.DESCRIPTOR.services_by_name["FeaturesService"].full_name,
    events_service_pb2.DESCRIPTOR.services_by_name["EventsService"].full_name,
)


async def build(settings: FeaturesSettings, server: grpc.aio.Server, resources: AsyncExitStack) -> list[str]:
    publisher = ClickPublisher(
        settings.endpoints.broker_bootstrap,
        settings.topics.clicks,
        settings.publish_timeout_s,
        round(settings.producer_linger_s * 1000),
    )
    # Waits for clicks in flight (their callers are still waiting) when the server stops.
    resources.push_async_callback(asyncio.to_thread, publisher.close)
    redis = redis_clients.async_client(
        settings.endpoints,
        socket_timeout=settings.redis_timeout_s,
        socket_connect_timeout=settings.redis_timeout_s,
        # One immediate reconnect when a pooled connection turns out closed: after a Redis
        # restart each idle one otherwise failed one read (seen in tests/integration/test_chaos.py).
        retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
    )
    resources.push_async_callback(redis.aclose)
    reader = FeatureReader(redis, settings.reader)
    pb_grpc.add_FeaturesServiceServicer_to_server(FeaturesServicer(settings, reader), server)
    events_service_pb2_grpc.add_EventsServiceServicer_to_server(EventsServicer(publisher, redis), server)
    return list(SERVICE_NAMES)


def main() -> None:
    serve("features", FeaturesSettings.from_env(), build)


if __name__ == "__main__":
    main()
