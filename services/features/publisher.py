"""Publishes click records with an idempotent, acks=all Kafka producer, answering only once the
broker has acknowledged (or failed) each record.

librdkafka delivers acknowledgements through poll(); a thread polls and hands
each result to the event loop that is awaiting it. Each record is one PRODUCER span (ended on the
broker's answer) whose context the record carries in its `traceparent` header.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Sequence

from confluent_kafka import KafkaError, KafkaException, Message, Producer
from prometheus_client import Counter, Histogram

from atelier.serving.click_event import ClickRecord
from atelier.serving.tracing import kafka_headers, producer_span

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
# then answers PRODUCER_FENCED forever), and after a broker restart lost the
# producer ids: librdkafka then retried UNKNOWN_PRODUCER_ID until every record
# timed out, forever. A timed-out record is treated the same: a new producer
# costs a reconnect, a stuck one every click from then on.
PRODUCER_STATE_ERRORS = frozenset(
    {
        KafkaError.PRODUCER_FENCED,
        KafkaError.INVALID_PRODUCER_EPOCH,
        KafkaError._FENCED,
        KafkaError.OUT_OF_ORDER_SEQUENCE_NUMBER,
        KafkaError.UNKNOWN_PRODUCER_ID,
        KafkaError.INVALID_PRODUCER_ID_MAPPING,
        KafkaError._FATAL,
        KafkaError._MSG_TIMED_OUT,
    }
)


def _is_fatal(error: Exception) -> bool:
    """A KafkaException carrying a fatal KafkaError: that producer is unusable from now on."""
    cause = error.args[0] if isinstance(error, KafkaException) and error.args else None
    return isinstance(cause, KafkaError) and cause.fatal()


def _describe(error: Exception) -> str:
    """librdkafka's words for a KafkaException (its str() is the `KafkaError{...}` repr)."""
    cause = error.args[0] if isinstance(error, KafkaException) and error.args else None
    return cause.str() if isinstance(cause, KafkaError) else str(error) or "local queue full"


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
            # Topics are the launcher's to create with their partition counts (atelier.serving.topics): a
            # producer asking first after a broker restart would get the broker's default count. A
            # record for a topic not there yet waits for it, within message.timeout.ms.
            "allow.auto.create.topics": False,
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
            # _current_producer() starts a new one (the poller calls it at once).
            self._fatal = True

    def _poll(self) -> None:
        while self._running:
            # A producer that went fatal is replaced here, without waiting for the next click.
            producer = self._current_producer()
            try:
                producer.poll(0.05)
            except KafkaException as error:
                # poll() raises a fatal error (seen: UNKNOWN_PRODUCER_ID once a broker restart
                # lost the producer ids). This thread must live on: without it no acknowledgement
                # would ever be delivered again.
                if _is_fatal(error):
                    self._on_error(error.args[0])
                else:
                    log.warning("producer poll failed", extra={"error": str(error)})
                    time.sleep(0.05)

    def _current_producer(self) -> Producer:
        with self._lock:
            if self._fatal:
                old, self._producer = self._producer, Producer(self._config)
                self._fatal = False
                # Fails the purged records' callbacks, so their callers hear of it; a fatal
                # producer may raise its error once more on the way out.
                with contextlib.suppress(KafkaException):
                    old.purge()
                    old.flush(0)
            return self._producer

    async def publish(self, record: ClickRecord, headers: Sequence[tuple[str, bytes]] = ()) -> None:
        """Returns once the broker acknowledged the record; raises PublishError otherwise. The record
        carries `headers` and the trace context of its produce span."""
        key = record.user_id.encode()
        with producer_span(self._topic, key):
            await self._produce(record, key, [*headers, *kafka_headers()])

    async def _produce(self, record: ClickRecord, key: bytes, headers: list[tuple[str, bytes]]) -> None:
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
                key=key,
                value=record.to_json(),
                headers=headers,
                on_delivery=on_delivery,
            )
        except (BufferError, KafkaException) as error:
            if _is_fatal(error):
                self._fatal = True  # the click after this one gets a new producer
            PUBLISHED.labels("rejected").inc()
            raise PublishError(f"click not queued for the broker: {_describe(error)}") from error
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
