"""The agents' collaborators (Redis writer, forwarder, clock, metrics), built once per worker.

They are built on first use, inside the worker's event loop (a Redis client
belongs to the loop that created it), and closed when the worker shuts down.
Tests assign `writer`, `forwarder`, `clock_ms` and `crash` before the agents run.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import faust
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from atelier.serving import redis_clients
from atelier.serving.feature_store.writer import ClickWriter
from services.stream.config import StreamSettings
from services.stream.forwarder import Forwarder, ProducerForwarder
from services.stream.handler import Applier, ClickHandler, wall_ms
from services.stream.health import install_health
from services.stream.metrics import StreamMetrics


class Runtime:
    def __init__(self, app: faust.App, settings: StreamSettings) -> None:
        self.app = app
        self.settings = settings
        # /ready/ (joined its consumer group) and /metrics (Faust's, the lag, the batches') on its web server.
        self.metrics = StreamMetrics(install_health(app))
        self.writer: Applier | None = None
        self.forwarder: Forwarder | None = None
        self.clock_ms: Callable[[], int] = wall_ms
        # Stops the worker when a batch cannot be settled (services.stream.acks).
        self.crash: Callable[[BaseException], Awaitable[None]] = app.crash
        self._redis: redis_clients.AsyncRedis | None = None
        self._handler: ClickHandler | None = None
        app.on_before_shutdown.connect(self._close)

    def handler(self) -> ClickHandler:
        if self._handler is None:
            settings = self.settings
            self._handler = ClickHandler(
                self.writer or self._new_writer(),
                self.get_forwarder(),
                settings.retry_tiers,
                settings.topics.dead_letter,
                settings.apply_timeout_s,
                self.clock_ms,
                self.metrics,
            )
        return self._handler

    def get_forwarder(self) -> Forwarder:
        if self.forwarder is None:
            self.forwarder = ProducerForwarder(
                self.app, self.settings.forward_timeout_s, self.settings.forward_backoff_s
            )
        return self.forwarder

    def reset(self) -> None:
        """Forgets the built handler, so that the next use sees new collaborators (tests)."""
        self._handler = None

    def _new_writer(self) -> Applier:
        settings = self.settings
        self._redis = redis_clients.async_client(
            settings.endpoints,
            socket_timeout=settings.redis_timeout_s,
            socket_connect_timeout=settings.redis_connect_timeout_s,
            # One quick reconnect (a connection the server closed while idle); beyond
            # that the retry topics do the waiting, not the client.
            retry=Retry(NoBackoff(), 1),
        )
        self.writer = ClickWriter(self._redis, settings.writer)
        return self.writer

    async def _close(self, *_: Any, **__: Any) -> None:
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None
