"""The features service (FeaturesService and EventsService): `python -m services.features`."""

from __future__ import annotations

import asyncio

import grpc
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from atelier.serving.feature_store.reader import FeatureReader, ReaderSettings
from atelier.serving.grpc_server import ServiceSpec, run
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


class FeaturesApp:
    """Owns the service's clients: created in the server's event loop, closed when it stops."""

    def __init__(self, settings: FeaturesSettings) -> None:
        self.settings = settings
        self.publisher: ClickPublisher | None = None
        self.redis: aioredis.Redis | None = None

    async def start(self) -> None:
        settings = self.settings
        self.publisher = ClickPublisher(
            settings.endpoints.broker_bootstrap,
            settings.topics.clicks,
            settings.publish_timeout_s,
            settings.producer_linger_ms,
        )
        self.redis = aioredis.from_url(
            settings.endpoints.redis_url,
            socket_timeout=settings.redis_timeout_s,
            socket_connect_timeout=settings.redis_timeout_s,
            # One immediate reconnect when a pooled connection turns out closed: after a Redis
            # restart each idle one otherwise failed one read (seen in tests/integration/test_chaos.py).
            retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
        )

    def register(self, server: grpc.aio.Server) -> list[str]:
        assert self.publisher is not None and self.redis is not None, "start() first"
        reader = FeatureReader(self.redis, ReaderSettings())
        pb_grpc.add_FeaturesServiceServicer_to_server(FeaturesServicer(self.settings, reader), server)
        events_service_pb2_grpc.add_EventsServiceServicer_to_server(EventsServicer(self.publisher), server)
        return list(SERVICE_NAMES)

    async def stop(self) -> None:
        if self.publisher is not None:
            await asyncio.to_thread(self.publisher.close)
        if self.redis is not None:
            await self.redis.aclose()


def main() -> None:
    settings = FeaturesSettings.from_env()
    app = FeaturesApp(settings)
    endpoints = settings.endpoints
    run(
        ServiceSpec(
            name="features",
            host=endpoints.listen_host,
            port=endpoints.features_port,
            metrics_port=endpoints.features_metrics_port,
            register=app.register,
            on_start=[app.start],
            on_stop=[app.stop],
        )
    )


if __name__ == "__main__":
    main()
