"""A stream worker's own Prometheus metrics: what each settled batch did (services.stream.handler).

They live in the worker's app registry, served on its web server's /metrics beside Faust's
metrics and the consumer lag (services.stream.health). Every batch is counted once it is
settled: applied, or re-routed with the broker's acknowledgement.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram

if TYPE_CHECKING:
    from services.stream.handler import Outcome

# A click is visible within ~0.1 s on a healthy stack; the retry tiers make it up to minutes.
VISIBLE_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
BATCH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class StreamMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.applied = Counter(
            "stream_records_applied",
            "Click records applied to Redis, by the topic they were read from.",
            ["topic"],
            registry=registry,
        )
        self.duplicates = Counter(
            "stream_records_duplicate",
            "Click records already applied before (the same user and event id), by topic.",
            ["topic"],
            registry=registry,
        )
        self.batch_seconds = Histogram(
            "stream_batch_seconds",
            "Time to settle one batch of click records (apply to Redis, re-route what failed), by topic.",
            ["topic"],
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self.click_to_visible = Histogram(
            "stream_click_to_visible_seconds",
            "From a click's timestamp to its write in Redis (when search sees it), by the topic it was read from.",
            ["topic"],
            buckets=VISIBLE_BUCKETS,
            registry=registry,
        )
        self.retries = Counter(
            "stream_retries",
            "Click records sent to a retry tier, by tier (its topic).",
            ["tier"],
            registry=registry,
        )
        self.dead_letters = Counter(
            "stream_dead_letters",
            "Click records sent to the dead-letter topic, by reason (invalid, stored_data, retries_exhausted).",
            ["reason"],
            registry=registry,
        )

    def settled(self, topic: str, seconds: float, outcome: Outcome) -> None:
        """One batch read from `topic`, settled in `seconds`."""
        self.batch_seconds.labels(topic).observe(seconds)
        self.applied.labels(topic).inc(outcome.applied)
        self.duplicates.labels(topic).inc(outcome.duplicates)
        latency = self.click_to_visible.labels(topic)
        for delay_ms in outcome.visible_after_ms:
            latency.observe(max(0, delay_ms) / 1000)  # a client clock ahead of ours counts as at once
        for tier, count in outcome.retries.items():
            self.retries.labels(tier).inc(count)
        for reason, count in outcome.dead_letters.items():
            self.dead_letters.labels(reason).inc(count)
