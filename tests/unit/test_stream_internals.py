"""The private Faust and aiokafka internals of services/stream/internals.py, checked against the installed packages.

Each test fails when the pinned library changes underneath the patch: re-read the
references in services/stream/internals.py before updating a version.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiokafka
import faust
import pytest
from aiokafka.consumer import consumer as aiokafka_consumer
from faust.transport import consumer as faust_consumer
from faust.transport.drivers import aiokafka as driver
from faust.types.settings import Settings as FaustSettings

from atelier.serving.settings import ROOT
from services.stream import internals


def pinned(package: str) -> str:
    constraints = (Path(ROOT) / "requirements" / "constraints.txt").read_text()
    match = re.search(rf"^{re.escape(package)}==(\S+)$", constraints, re.MULTILINE)
    assert match, f"{package} is not pinned in requirements/constraints.txt"
    return match.group(1)


def test_the_references_are_to_the_installed_and_pinned_versions() -> None:
    assert faust.__version__ == internals.FAUST_VERSION == pinned("faust-streaming"), (
        "faust-streaming changed: re-check services/stream/internals.py against its source"
    )
    assert aiokafka.__version__ == internals.AIOKAFKA_VERSION == pinned("aiokafka"), (
        "aiokafka changed: re-check services/stream/internals.py against its source"
    )


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[faust.App]:
    """A Faust app configured like none of ours: Faust's own consumer, no broker needed to build it."""
    yield faust.App(f"internals-test-{tmp_path.name}", broker="kafka://127.0.0.1:1", datadir=str(tmp_path), env={})


async def test_faust_still_has_no_fetch_wait_setting_and_hard_codes_one_and_a_half_seconds(app: faust.App) -> None:
    """When a Faust release adds a setting (or stops hard-coding 1500 ms), the patch may go."""
    assert not [name for name in FaustSettings.setting_names() if "fetch" in name and "wait" in name]
    source = inspect.getsource(driver.AIOKafkaConsumerThread._create_worker_consumer)
    assert "fetch_max_wait_ms=1500," in source
    consumer = internals.worker_consumer(app)
    try:
        assert internals.fetch_max_wait_ms(consumer) == 1500
    finally:
        await consumer.stop()


def test_the_overridden_faust_methods_still_exist_with_the_same_signatures() -> None:
    create = getattr(driver.AIOKafkaConsumerThread, internals.CREATE_WORKER_CONSUMER)
    assert list(inspect.signature(create).parameters) == ["self", "transport"]
    new_thread = getattr(driver.Consumer, internals.NEW_CONSUMER_THREAD)
    assert list(inspect.signature(new_thread).parameters) == ["self"]
    # ThreadDelegateConsumer builds its thread with that hook, in __init__, into `_thread`.
    init = inspect.getsource(faust_consumer.ThreadDelegateConsumer.__init__)
    assert "self._thread = self._new_consumer_thread()" in init
    # Faust creates the worker's consumer (not a client-only one) through the overridden method.
    assert "return self._create_worker_consumer(transport)" in inspect.getsource(
        driver.AIOKafkaConsumerThread._create_consumer
    )
    # The public hook the patched transport uses to bring its consumer class.
    assert driver.Transport.Consumer is driver.Consumer


async def test_aiokafka_keeps_the_fetch_wait_in_the_attribute_it_hands_to_its_fetcher(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    consumer = aiokafka.AIOKafkaConsumer(bootstrap_servers="127.0.0.1:1", fetch_max_wait_ms=1500)
    assert getattr(consumer, internals.FETCH_MAX_WAIT_ATTRIBUTE) == 1500
    internals.set_fetch_max_wait(consumer, 42)

    class Built(Exception):
        pass

    fetcher_arguments: dict[str, Any] = {}

    def fetcher(*args: Any, **kwargs: Any) -> None:
        fetcher_arguments.update(kwargs)
        raise Built

    async def nothing(*args: Any, **kwargs: Any) -> None:
        return None

    # start() without a broker: skip its bootstrap and stop where it builds the Fetcher.
    monkeypatch.setattr(consumer._client, "bootstrap", nothing)
    monkeypatch.setattr(consumer, "_wait_topics", nothing)
    monkeypatch.setattr(aiokafka_consumer, "Fetcher", fetcher)
    try:
        with pytest.raises(Built):
            await consumer.start()
    finally:
        await consumer.stop()
    assert fetcher_arguments["fetch_max_wait_ms"] == 42


async def test_the_patched_transport_builds_consumers_with_the_configured_wait(app: faust.App) -> None:
    internals.install_fetch_wait(app, 77)
    assert isinstance(app.transport, driver.Transport)
    consumer = internals.worker_consumer(app)
    try:
        assert internals.fetch_max_wait_ms(consumer) == 77
        assert isinstance(consumer, aiokafka.AIOKafkaConsumer)
    finally:
        await consumer.stop()


def test_a_consumer_without_the_attribute_fails_start_up_loudly() -> None:
    class Elsewhere:
        pass

    with pytest.raises(RuntimeError, match=re.escape("AIOKafkaConsumer._fetch_max_wait_ms: update services/stream")):
        internals.set_fetch_max_wait(Elsewhere(), 50)  # type: ignore[arg-type]


def test_aiokafka_builds_its_topic_metadata_requests_with_the_patched_name() -> None:
    """The patch replaces `aiokafka.client.MetadataRequest`: the client must still build requests by that name."""
    from aiokafka import client as aiokafka_client
    from aiokafka.protocol.metadata import MetadataRequest

    source = inspect.getsource(aiokafka_client.AIOKafkaClient._metadata_update)
    assert f"{internals.METADATA_REQUEST}(list(topics) if topics else None)" in source
    assert getattr(aiokafka_client, internals.METADATA_REQUEST) in (
        MetadataRequest,
        internals.MetadataRequestWithoutAutoCreation,
    )


def test_aiokafka_asks_the_broker_to_auto_create_unless_patched() -> None:
    """When aiokafka gains a way to turn auto-creation off (or stops asking for it), the patch may go."""
    from aiokafka.protocol.metadata import MetadataRequest, MetadataRequest_v5

    assert MetadataRequest(["clicks"]).build(MetadataRequest_v5).allow_auto_topic_creation is True
    assert "allow_auto_create" not in inspect.signature(aiokafka.AIOKafkaConsumer).parameters
    assert "allow_auto_create" not in inspect.signature(aiokafka.AIOKafkaProducer).parameters


def test_forbidding_auto_creation_makes_every_metadata_request_say_so(monkeypatch: pytest.MonkeyPatch) -> None:
    from aiokafka import client as aiokafka_client
    from aiokafka.protocol.metadata import MetadataRequest, MetadataRequest_v5

    monkeypatch.setattr(aiokafka_client, internals.METADATA_REQUEST, MetadataRequest)
    internals.forbid_topic_auto_creation()
    internals.forbid_topic_auto_creation()  # idempotent
    request_class = getattr(aiokafka_client, internals.METADATA_REQUEST)
    assert request_class is internals.MetadataRequestWithoutAutoCreation
    built = request_class(["clicks"]).build(MetadataRequest_v5)
    assert built.allow_auto_topic_creation is False
    assert built.topics == ["clicks"]


def test_forbidding_auto_creation_refuses_an_aiokafka_it_does_not_know(monkeypatch: pytest.MonkeyPatch) -> None:
    from aiokafka import client as aiokafka_client

    monkeypatch.setattr(aiokafka_client, internals.METADATA_REQUEST, object)
    with pytest.raises(RuntimeError, match=r"update services/stream/internals\.py"):
        internals.forbid_topic_auto_creation()
