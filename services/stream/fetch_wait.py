"""A Faust (aiokafka) transport whose consumer waits at most a configured time per fetch.

Faust builds its aiokafka consumer in AIOKafkaConsumerThread._create_worker_consumer
with `fetch_max_wait_ms=1500` written into the call, and has no setting for it.
Rather than copy that method (about forty arguments that change between Faust
releases), the subclass lets Faust build the consumer as it always does and only
replaces the one value before the consumer starts: AIOKafkaConsumer keeps the
argument in `_fetch_max_wait_ms` and hands it to its Fetcher in `start()`.
That attribute is private to aiokafka, so its absence fails the worker at
start-up instead of silently keeping 1.5 s (and a unit test checks it).
"""

from __future__ import annotations

from typing import Any

import aiokafka
from faust.transport.drivers import aiokafka as driver

_ATTRIBUTE = "_fetch_max_wait_ms"


def set_fetch_max_wait(consumer: aiokafka.AIOKafkaConsumer, fetch_max_wait_ms: int) -> None:
    """Sets the fetch wait of a consumer that has not started yet."""
    if not hasattr(consumer, _ATTRIBUTE):
        raise RuntimeError(
            f"aiokafka {aiokafka.__version__} has no AIOKafkaConsumer.{_ATTRIBUTE}: "
            "update services/stream/fetch_wait.py for this version"
        )
    setattr(consumer, _ATTRIBUTE, fetch_max_wait_ms)


def transport_class(fetch_max_wait_ms: int) -> type[driver.Transport]:
    """The aiokafka transport with the fetch wait replaced (install with `app.transport = cls(url, app)`)."""

    class FetchWaitConsumerThread(driver.AIOKafkaConsumerThread):
        def _create_worker_consumer(self, transport: driver.Transport) -> aiokafka.AIOKafkaConsumer:
            consumer = super()._create_worker_consumer(transport)
            set_fetch_max_wait(consumer, fetch_max_wait_ms)
            return consumer

    class FetchWaitConsumer(driver.Consumer):
        def _new_consumer_thread(self) -> driver.AIOKafkaConsumerThread:
            return FetchWaitConsumerThread(self, loop=self.loop, beacon=self.beacon)

    class FetchWaitTransport(driver.Transport):
        Consumer: Any = FetchWaitConsumer

    return FetchWaitTransport
