"""What a stream worker's metrics say about the batches it settled (services.stream.metrics)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry
from redis.exceptions import ConnectionError as RedisConnectionError

from services.stream.config import RetryTier
from services.stream.handler import ClickHandler
from services.stream.metrics import StreamMetrics
from services.stream.records import Incoming
from tests.unit.test_stream_agents import FakeForwarder, FakeWriter, click, headers

TIERS = (RetryTier("clicks.retry.1s", 1.0, 1), RetryTier("clicks.retry.10s", 10.0, 2))
CLICK_MS = click("a").event_time_ms


def handler_with_metrics(writer: FakeWriter, now_ms: int) -> tuple[ClickHandler, CollectorRegistry]:
    registry = CollectorRegistry()
    handler = ClickHandler(
        writer, FakeForwarder(), TIERS, "clicks.dlq", 1.0, clock_ms=lambda: now_ms, metrics=StreamMetrics(registry)
    )
    return handler, registry


def record(topic: str, value: bytes) -> Incoming:
    return Incoming(topic, b"u1", value, headers())


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


async def test_applied_clicks_are_counted_with_their_click_to_visible_latency() -> None:
    writer = FakeWriter(applied={"seen"})
    handler, registry = handler_with_metrics(writer, now_ms=CLICK_MS + 250)
    batch = [record("clicks", click(event_id).to_json()) for event_id in ("a", "b", "seen")]
    await handler.handle(batch, attempt=0)
    assert value(registry, "stream_records_applied_total", topic="clicks") == 2
    assert value(registry, "stream_records_duplicate_total", topic="clicks") == 1
    # Only the two new clicks became visible, each 250 ms after it was made.
    assert value(registry, "stream_click_to_visible_seconds_count", topic="clicks") == 2
    assert value(registry, "stream_click_to_visible_seconds_sum", topic="clicks") == 0.5
    assert value(registry, "stream_click_to_visible_seconds_bucket", topic="clicks", le="0.25") == 2
    assert value(registry, "stream_batch_seconds_count", topic="clicks") == 1


async def test_retries_are_counted_by_tier_and_dead_letters_by_reason() -> None:
    writer = FakeWriter(failures=[RedisConnectionError("down"), RedisConnectionError("down")])
    handler, registry = handler_with_metrics(writer, now_ms=CLICK_MS)
    await handler.handle([record("clicks", click("a").to_json()), record("clicks", b"{not json")], attempt=0)
    assert value(registry, "stream_retries_total", tier="clicks.retry.1s") == 1
    assert value(registry, "stream_dead_letters_total", reason="invalid") == 1
    # The last tier's failure gives up: a dead letter, not a retry.
    await handler.handle([record("clicks.retry.10s", click("a").to_json())], attempt=2)
    assert value(registry, "stream_dead_letters_total", reason="retries_exhausted") == 1
    assert value(registry, "stream_records_applied_total", topic="clicks") == 0
    assert value(registry, "stream_batch_seconds_count", topic="clicks.retry.10s") == 1
