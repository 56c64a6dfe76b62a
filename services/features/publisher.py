"""Publishes click records with an idempotent, acks=all Kafka producer, answering only once the
broker has acknowledged (or failed) each record.

librdkafka delivers acknowledgements through poll(); a thread polls and hands
each result to the event loop that is awaiting it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence

from confluent_kafka import KafkaError, KafkaException, Message, Producer
from prometheus_client import Counter, Histogram

from atelier.click_event import ClickRecord

log = logging.getLogger(__name__)

PUBLISHED = Counter("features_clicks_published_total", "Click records by delivery outcome.", ["outcome"])
ACK_LATENCY = Histogram(
    "features_click_ack_seconds",
    "Time from produce to the broker's acknowledgement.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)


# Delivery errors after which this producer's idempotence state is unusable: a
# new producer (new producer id) is the way out. Seen with the local broker when
# a produce request timed out in flight (librdkafka bumps the epoch; the broker
# then answers PRODUCER_FENCED forever).
PRODUCER_STATE_ERRORS = frozenset(
    {
        KafkaError.PRODUCER_FENCED,
        KafkaError.INVALID_PRODUCER_EPOCH,
        KafkaError._FENCED,
        KafkaError.OUT_OF_ORDER_SEQUENCE_NUMBER,
        KafkaError.UNKNOWN_PRODUCER_ID,
        KafkaError.INVALID_PRODUCER_ID_MAPPING,
        KafkaError._FATAL,
    }
)


class PublishError(RuntimeError):
    """The broker did not acknowledge the record: nothing may be assumed delivered."""


class ClickPublisher:
    def __init__(self, bootstrap: str, topic: str, timeout_s: float, linger_ms: int = 1) -> None:
        self._topic = topic
        self._timeout_s = timeout_s
        self._config = {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": linger_ms,
            # The Java client's partitioner (Faust too), so a user maps to the same partition everywhere.
            "partitioner": "murmur2_random",
            # librdkafka gives up (and reports it) before the caller's deadline.
            "message.timeout.ms": int(timeout_s * 1000),
            "request.timeout.ms": max(1000, int(timeout_s * 1000) // 2),
            "socket.connection.setup.timeout.ms": 1000,
            "reconnect.backoff.max.ms": 1000,
            "error_cb": self._on_error,
        }
        self._producer = Producer(self._config)
        self._fatal = False
        self._lock = threading.Lock()
        self._running = True
        self._poller = threading.Thread(target=self._poll, name="kafka-producer-poll", daemon=True)
        self._poller.start()

    def _on_error(self, error: KafkaError) -> None:
        """librdkafka's global errors; most are transient and retried by librdkafka itself."""
        log.warning("producer error", extra={"error": str(error), "fatal": error.fatal()})
        if error.fatal():
            # The next publish starts a new producer.
            self._fatal = True

    def _poll(self) -> None:
        while self._running:
            with self._lock:
                producer = self._producer
            producer.poll(0.05)

    def _current_producer(self) -> Producer:
        with self._lock:
            if self._fatal:
                old, self._producer = self._producer, Producer(self._config)
                self._fatal = False
                old.purge()
                old.flush(0)  # fails the purged records' callbacks, so their callers hear of it
            return self._producer

    async def publish(self, record: ClickRecord, headers: Sequence[tuple[str, bytes]] = ()) -> None:
        """Returns once the broker acknowledged the record; raises PublishError otherwise."""
        loop = asyncio.get_running_loop()
        acknowledged: asyncio.Future[None] = loop.create_future()
        started = loop.time()

        def on_delivery(error: KafkaError | None, message: Message) -> None:
            if error is not None and (error.fatal() or error.code() in PRODUCER_STATE_ERRORS):
                self._fatal = True

            def settle() -> None:
                if acknowledged.done():
                    return
                if error is None:
                    acknowledged.set_result(None)
                else:
                    acknowledged.set_exception(PublishError(f"broker rejected the click: {error.str()}"))

            loop.call_soon_threadsafe(settle)

        try:
            self._current_producer().produce(
                self._topic,
                key=record.user_id.encode(),
                value=record.to_json(),
                headers=list(headers),
                on_delivery=on_delivery,
            )
        except (BufferError, KafkaException) as error:
            PUBLISHED.labels("rejected").inc()
            raise PublishError(f"click not queued for the broker: {error}") from error
        try:
            await asyncio.wait_for(acknowledged, timeout=self._timeout_s + 1.0)
        except TimeoutError:
            PUBLISHED.labels("timeout").inc()
            raise PublishError(f"the broker did not acknowledge the click within {self._timeout_s:.1f}s") from None
        except PublishError:
            PUBLISHED.labels("failed").inc()
            raise
        PUBLISHED.labels("acknowledged").inc()
        ACK_LATENCY.observe(loop.time() - started)

    def close(self, timeout_s: float = 5.0) -> None:
        """Waits for records in flight (their callers are still waiting), then stops polling."""
        with self._lock:
            self._producer.flush(timeout_s)
        self._running = False
        self._poller.join(timeout=1.0)
