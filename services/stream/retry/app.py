"""The retry worker: one agent per retry tier, each waiting until its records are due.

A record of tier n (attempt n) is applied once its due time (RecordHeader.RETRY_DUE)
has passed; when that fails it goes to tier n + 1, and after the last tier to
the dead-letter topic with the last error and its attempt count. Batches are
acknowledged only once settled, as in the primary worker (services.stream.acks).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import faust
from faust.types import StreamT

from services.stream.acks import acked_once_settled
from services.stream.config import RetryTier, StreamSettings
from services.stream.faust_app import create_app
from services.stream.records import incoming
from services.stream.retry.waiting import DueWaiter, process_tier_batch
from services.stream.runtime import Runtime

settings = StreamSettings.from_env()
app: faust.App = create_app(
    settings.retry_app_id,
    settings.endpoints.stream_retry_web_port,
    settings.retry_data_dir,
    settings,
    "stream-retry",
    settings.retry_fetch_max_wait_ms,
)
runtime = Runtime(app, settings)


def waiter() -> DueWaiter:
    # app.sleep returns early when the worker stops, so shutdown never waits out a 60 s tier.
    return DueWaiter(sleep=app.sleep, stopping=lambda: app.should_stop, clock_ms=runtime.clock_ms)


def tier_agent(tier: RetryTier) -> Callable[[StreamT], Coroutine[Any, Any, None]]:
    async def retry_tier(stream: StreamT) -> None:
        async for events in stream.noack_take(settings.retry_batch_size, within=settings.retry_batch_window_s):
            async with acked_once_settled(stream, events, runtime.crash):
                await process_tier_batch(
                    [incoming(event) for event in events],
                    tier.attempt,
                    runtime.handler(),
                    waiter(),
                    runtime.get_forwarder(),
                )

    return retry_tier


agents = {
    tier.attempt: app.agent(
        app.topic(tier.topic, key_serializer="raw", value_serializer="raw"), name=f"retry-{tier.attempt}"
    )(tier_agent(tier))
    for tier in settings.retry_tiers
}
