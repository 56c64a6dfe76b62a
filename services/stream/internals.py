"""The one place the stream workers depend on private Faust and aiokafka internals.

Pinned (requirements/constraints.txt): faust-streaming 0.15.3 and aiokafka 0.14.0;
every reference below (file:line in site-packages) is to those versions' source.
tests/unit/test_stream_internals.py checks each one against the installed packages
and fails when either version changes: re-check this module before updating the pin.

Everything else of the workers uses public API: the consumer's other settings are
`faust.App` arguments, `App.transport` has a public setter (faust/app/base.py:2091),
and a batch is acknowledged only once settled with `Stream.noack_take` and
`Stream.ack` (faust/streams.py:683 and :1378; services.stream.acks).

The one patch: the consumer's fetch wait.
  Faust builds the worker's consumer in `AIOKafkaConsumerThread._create_worker_consumer`
  (faust/transport/drivers/aiokafka.py:568) with `fetch_max_wait_ms=1500` written into
  the call (:615), and has no setting for it: its consumer_* and broker_* settings
  (faust/types/settings/settings.py:780-1215) are the only consumer arguments it passes
  on, and `App` has no pass-through for others (it ignores unknown keyword arguments,
  such as a made-up consumer_fetch_max_wait_ms, without a word). On the local broker (Tansu) a
  fetch waits that long even when records arrive, which made it most of the
  click-to-Redis latency (p50 ~700 ms, against ~35 ms at 50 ms). aiokafka's only public
  way to set the wait is the constructor argument (aiokafka/consumer/consumer.py:240);
  `AIOKafkaConsumer.__init__` keeps it in `_fetch_max_wait_ms` (:330) and `start()`
  hands it to its Fetcher (:391). Rather than copy `_create_worker_consumer` (about
  forty arguments that change between Faust releases), the patch lets Faust build the
  consumer as usual and replaces that one value before the consumer starts. It needs
  three private names:
    - faust `Consumer._new_consumer_thread` (drivers/aiokafka.py:237; the hook
      `ThreadDelegateConsumer.__init__` calls, faust/transport/consumer.py:1398, 1402),
      to make the consumer build the subclassed thread;
    - faust `AIOKafkaConsumerThread._create_worker_consumer` (drivers/aiokafka.py:568,
      called by `_create_consumer`, :559, when the consumer thread starts);
    - aiokafka `AIOKafkaConsumer._fetch_max_wait_ms` (consumer/consumer.py:330).
  The transport's `Consumer` class attribute (drivers/aiokafka.py:1520) is public.
  A missing attribute fails the worker at start-up instead of silently keeping 1.5 s.
  Tests build such a consumer through `worker_consumer`, which also reads faust's
  `ThreadDelegateConsumer._thread` (faust/transport/consumer.py:1398).

The other patch: no topic is ever created by asking for its metadata.
  aiokafka's client asks for the metadata of the topics it uses with
  `MetadataRequest(list(topics))` (aiokafka/client.py:286, imported at :22), which sets
  `allow_auto_topic_creation` to True from version 4 on (aiokafka/protocol/metadata.py:
  284-288); no consumer or producer argument turns it off. The local broker (Tansu) keeps
  topics in memory and auto-creates with 4 partitions: after it restarts, a worker asking
  first would recreate the click topics with 4 partitions instead of 12 before the
  launcher's topic step (atelier.stack.broker) could (seen in CI). The patch replaces the
  name `MetadataRequest` in aiokafka.client with a subclass whose default is False, so
  every aiokafka client of the process (the worker's consumer and producer) leaves
  topics to whoever creates them; a topic that does not exist yet is seen at the next
  metadata refresh (STREAM_METADATA_MAX_AGE_S).
"""

from __future__ import annotations

from typing import Any

import aiokafka
import aiokafka.client
import faust
from aiokafka.protocol.metadata import MetadataRequest
from faust.transport.drivers import aiokafka as driver

# The versions whose source the references above were checked against.
FAUST_VERSION = "0.15.3"
AIOKAFKA_VERSION = "0.14.0"

# aiokafka/consumer/consumer.py: AIOKafkaConsumer.__init__ stores the argument here, start() reads it.
FETCH_MAX_WAIT_ATTRIBUTE = "_fetch_max_wait_ms"
# faust/transport/drivers/aiokafka.py: the methods the patch overrides.
CREATE_WORKER_CONSUMER = "_create_worker_consumer"
NEW_CONSUMER_THREAD = "_new_consumer_thread"
# aiokafka/client.py: the module-level name `_metadata_update` builds its requests with.
METADATA_REQUEST = "MetadataRequest"


def set_fetch_max_wait(consumer: aiokafka.AIOKafkaConsumer, fetch_max_wait_ms: int) -> None:
    """Sets the fetch wait of a consumer that has not started yet."""
    if not hasattr(consumer, FETCH_MAX_WAIT_ATTRIBUTE):
        raise RuntimeError(
            f"aiokafka {aiokafka.__version__} has no AIOKafkaConsumer.{FETCH_MAX_WAIT_ATTRIBUTE}: "
            "update services/stream/internals.py for this version"
        )
    setattr(consumer, FETCH_MAX_WAIT_ATTRIBUTE, fetch_max_wait_ms)


def fetch_max_wait_ms(consumer: aiokafka.AIOKafkaConsumer) -> int:
    """The fetch wait a consumer will use once started (tests)."""
    return getattr(consumer, FETCH_MAX_WAIT_ATTRIBUTE)


def transport_class(fetch_max_wait_ms: int) -> type[driver.Transport]:
    """Faust's aiokafka transport with the consumer's fetch wait replaced."""

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


def install_fetch_wait(app: faust.App, fetch_max_wait_ms: int) -> None:
    """Makes the app's consumer wait at most `fetch_max_wait_ms` per fetch.

    Call before anything asks for `app.transport` (declaring a topic does).
    """
    app.transport = transport_class(fetch_max_wait_ms)(app.conf.broker_consumer, app)


def worker_consumer(app: faust.App) -> aiokafka.AIOKafkaConsumer:
    """A new, unstarted aiokafka consumer, built as the app's worker builds its own (tests)."""
    return getattr(app.consumer._thread, CREATE_WORKER_CONSUMER)(app.transport)


class MetadataRequestWithoutAutoCreation(MetadataRequest):
    """aiokafka's metadata request, never asking the broker to create the topics it names."""

    def __init__(self, topics: list[str] | None = None, allow_auto_topic_creation: bool | None = False) -> None:
        super().__init__(topics, allow_auto_topic_creation)


def forbid_topic_auto_creation() -> None:
    """Makes every aiokafka client of this process ask for metadata without creating topics (idempotent)."""
    current = getattr(aiokafka.client, METADATA_REQUEST, None)
    if current is MetadataRequestWithoutAutoCreation:
        return
    if current is not MetadataRequest:
        raise RuntimeError(
            f"aiokafka {aiokafka.__version__} no longer builds its metadata requests with "
            f"aiokafka.client.{METADATA_REQUEST}: update services/stream/internals.py for this version"
        )
    setattr(aiokafka.client, METADATA_REQUEST, MetadataRequestWithoutAutoCreation)
