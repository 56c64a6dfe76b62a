"""The stream workers' agents under Faust's test context: no broker, a fake writer and forwarder."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from types import ModuleType

import pytest
from faust.types import EventT
from redis.exceptions import ConnectionError as RedisConnectionError

from atelier.serving.click_event import ClickRecord, RecordHeader
from atelier.serving.feature_store.writer import StoredDataError
from services.stream import internals
from services.stream.handler import ClickHandler
from services.stream.records import Incoming, Outgoing
from services.stream.retry.waiting import DueWaiter, process_tier_batch

TRACEPARENT = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
# Short tiers, so that the waits of the retry tests are real but brief.
DELAYS_S = (0.2, 0.3, 0.4)


@pytest.fixture(scope="module")
def workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ModuleType, ModuleType]]:
    """The two worker modules, their settings read from this environment (imported once per process)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ATELIER_STATE_DIR", str(tmp_path_factory.mktemp("stream-state")))
        patch.setenv("STREAM_RETRY_DELAYS_S", ",".join(map(str, DELAYS_S)))
        patch.setenv("STREAM_BATCH_WINDOW_S", "0.01")
        patch.setenv("STREAM_RETRY_BATCH_WINDOW_S", "0.01")
        from services.stream import app as primary
        from services.stream.retry import app as retry

        assert primary.settings.retry_delays_s == DELAYS_S, "imported elsewhere before this fixture"
        yield primary, retry


@dataclass
class FakeWriter:
    """ClickWriter with its dedupe; `failures` are raised by the next calls, one each."""

    failures: list[BaseException] = field(default_factory=list)
    calls: list[list[ClickRecord]] = field(default_factory=list)
    applied: set[str] = field(default_factory=set)

    async def apply(self, events: Sequence[ClickRecord]) -> list[bool]:
        self.calls.append(list(events))
        if self.failures:
            raise self.failures.pop(0)
        flags = [event.event_id not in self.applied for event in events]
        self.applied.update(event.event_id for event in events)
        return flags


@dataclass
class FakeForwarder:
    records: list[Outgoing] = field(default_factory=list)

    async def forward(self, records: Sequence[Outgoing]) -> None:
        self.records.extend(records)

    def to(self, topic: str) -> list[Outgoing]:
        return [record for record in self.records if record.topic == topic]


@dataclass
class Crashes:
    errors: list[BaseException] = field(default_factory=list)

    async def crash(self, error: BaseException) -> None:
        self.errors.append(error)


@pytest.fixture
def crashes() -> Crashes:
    return Crashes()


@pytest.fixture
def fakes(workers: tuple[ModuleType, ModuleType], crashes: Crashes) -> Iterator[tuple[FakeWriter, FakeForwarder]]:
    """A fake writer and forwarder for both workers; stopping the worker is recorded, not done."""
    writer, forwarder = FakeWriter(), FakeForwarder()
    for module in workers:
        module.runtime.writer, module.runtime.forwarder = writer, forwarder
        module.runtime.crash = crashes.crash
        module.runtime.reset()
    yield writer, forwarder
    for module in workers:
        module.runtime.crash = module.app.crash
        module.runtime.reset()


def click(event_id: str, **changes: object) -> ClickRecord:
    fields: dict = dict(
        event_id=event_id,
        user_id="u1",
        item_id="0108775015",
        position=0,
        source="search",
        device="web",
        event_time_ms=1_767_225_600_000,
    )
    return ClickRecord(**(fields | changes))


def headers(**extra: bytes) -> dict[str, bytes]:
    return {RecordHeader.TRACEPARENT: TRACEPARENT} | {name.replace("_", "-"): value for name, value in extra.items()}


async def until(condition: Callable[[], bool], timeout_s: float = 3.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


async def test_valid_batch_is_applied_once(workers: tuple, fakes: tuple[FakeWriter, FakeForwarder]) -> None:
    primary, _ = workers
    writer, forwarder = fakes
    async with primary.apply_clicks.test_context() as agent:
        events = [await agent.put(click(f"e{i}").to_json(), key=b"u1", wait=False) for i in range(3)]
        await until(lambda: writer.applied == {"e0", "e1", "e2"})
        await until(lambda: all(event.message.acked for event in events))
    assert len(writer.calls) == 1, "one apply for the whole batch"
    assert forwarder.records == []


async def test_invalid_records_go_to_the_dead_letter_topic_and_the_rest_is_applied(
    workers: tuple, fakes: tuple[FakeWriter, FakeForwarder]
) -> None:
    primary, _ = workers
    writer, forwarder = fakes
    dlq = primary.settings.topics.dead_letter
    async with primary.apply_clicks.test_context() as agent:
        await agent.put(b"{not json", key=b"u1", headers=headers(), wait=False)
        await agent.put(click("bad", source="carrier-pigeon").to_json(), key=b"u1", headers=headers(), wait=False)
        await agent.put(click("good").to_json(), key=b"u1", wait=False)
        await until(lambda: len(forwarder.records) == 2 and writer.applied == {"good"})
    first, second = forwarder.to(dlq)
    assert first.value == b"{not json" and first.key == b"u1"
    assert first.headers[RecordHeader.ERROR].startswith(b"invalid click: undecodable JSON")
    assert b"source: must be one of" in second.headers[RecordHeader.ERROR]
    for record in (first, second):
        assert record.headers[RecordHeader.ORIGIN_TOPIC] == primary.settings.topics.clicks.encode()
        assert record.headers[RecordHeader.TRACEPARENT] == TRACEPARENT


async def test_stored_data_problem_dead_letters_that_event_and_applies_the_others(
    workers: tuple, fakes: tuple[FakeWriter, FakeForwarder]
) -> None:
    primary, _ = workers
    writer, forwarder = fakes
    writer.failures.append(StoredDataError("FEATURESTORE event=1 id=b: key holds a string", 1))
    async with primary.apply_clicks.test_context() as agent:
        for event_id in ("a", "b", "c"):
            await agent.put(click(event_id).to_json(), key=b"u1", wait=False)
        await until(lambda: writer.applied == {"a", "c"} and len(forwarder.records) == 1)
    (dead,) = forwarder.records
    assert dead.topic == primary.settings.topics.dead_letter
    assert b'"event_id":"b"' in dead.value and b"key holds a string" in dead.headers[RecordHeader.ERROR]


async def test_transient_error_sends_the_whole_batch_to_the_first_retry_tier(
    workers: tuple, fakes: tuple[FakeWriter, FakeForwarder]
) -> None:
    primary, _ = workers
    writer, forwarder = fakes
    writer.failures.append(RedisConnectionError("Connection refused"))
    started_ms = now_ms()
    async with primary.apply_clicks.test_context() as agent:
        events = [await agent.put(click(f"e{i}").to_json(), key=b"u1", headers=headers(), wait=False) for i in range(3)]
        await until(lambda: len(forwarder.records) == 3)
        await until(lambda: all(event.message.acked for event in events))
    assert writer.applied == set()
    for index, record in enumerate(forwarder.records):
        assert record.topic == primary.settings.topics.retry_1s
        assert record.value == click(f"e{index}").to_json() and record.key == b"u1"
        assert record.headers[RecordHeader.RETRY_ATTEMPT] == b"1"
        due_ms = int(record.headers[RecordHeader.RETRY_DUE])
        assert started_ms + DELAYS_S[0] * 1000 <= due_ms <= now_ms() + DELAYS_S[0] * 1000
        assert record.headers[RecordHeader.ERROR] == b"ConnectionError: Connection refused"
        assert record.headers[RecordHeader.TRACEPARENT] == TRACEPARENT


async def test_a_batch_that_fails_to_settle_stays_unacknowledged_and_stops_the_worker(
    workers: tuple, fakes: tuple[FakeWriter, FakeForwarder], crashes: Crashes
) -> None:
    primary, _ = workers
    writer, _ = fakes
    writer.failures.append(RedisConnectionError("down"))

    class BrokenForwarder:
        async def forward(self, records: Sequence[Outgoing]) -> None:
            raise RuntimeError("the forwarder gave up")

    primary.runtime.forwarder = BrokenForwarder()
    primary.runtime.reset()
    events: list[EventT] = []
    with pytest.raises(RuntimeError, match="the forwarder gave up"):
        async with primary.apply_clicks.test_context() as agent:
            event = await agent.put(click("lost?").to_json(), key=b"u1", wait=False)
            # A worker's conductor takes one reference per channel it delivers to; the test context takes none.
            event.message.incref()
            events.append(event)
            await until(lambda: agent._crash_reason is not None)
            raise agent._crash_reason
    await asyncio.sleep(0.05)
    (event,) = events
    assert not event.message.acked and event.message.refcount > 0, "its offset must not be committed"
    assert [str(error) for error in crashes.errors] == ["the forwarder gave up"], "the worker must stop"


async def test_retry_tier_waits_until_due_then_applies(workers: tuple, fakes: tuple[FakeWriter, FakeForwarder]) -> None:
    _, retry = workers
    writer, forwarder = fakes
    due_ms = now_ms() + 300
    applied_at: list[int] = []
    original = writer.apply

    async def timed_apply(events: Sequence[ClickRecord]) -> list[bool]:
        applied_at.append(now_ms())
        return await original(events)

    writer.apply = timed_apply  # type: ignore[method-assign]
    async with retry.agents[1].test_context() as agent:
        await agent.put(
            click("late").to_json(),
            key=b"u1",
            headers=headers(atelier_retry_attempt=b"1", atelier_retry_due_ms=str(due_ms).encode()),
            wait=False,
        )
        await asyncio.sleep(0.1)
        assert writer.applied == set(), "applied before it was due"
        await until(lambda: writer.applied == {"late"})
    assert applied_at[0] >= due_ms
    assert forwarder.records == []


async def test_retry_tiers_wait_independently(workers: tuple, fakes: tuple[FakeWriter, FakeForwarder]) -> None:
    _, retry = workers
    writer, _ = fakes
    async with retry.agents[3].test_context() as slow, retry.agents[1].test_context() as fast:
        far = str(now_ms() + 5_000).encode()
        await slow.put(click("slow").to_json(), headers=headers(atelier_retry_due_ms=far), wait=False)
        await asyncio.sleep(0.05)
        due = str(now_ms()).encode()
        await fast.put(click("fast").to_json(), headers=headers(atelier_retry_due_ms=due), wait=False)
        await until(lambda: writer.applied == {"fast"}, timeout_s=1.0)


async def test_failure_in_a_tier_goes_to_the_next_and_after_the_last_to_dead_letter(
    workers: tuple, fakes: tuple[FakeWriter, FakeForwarder]
) -> None:
    _, retry = workers
    writer, forwarder = fakes
    topics = retry.settings.topics
    writer.failures += [RedisConnectionError("still down"), RedisConnectionError("still down")]
    past = str(now_ms() - 1).encode()
    origin = topics.clicks.encode()
    record_headers = headers(atelier_retry_due_ms=past, atelier_origin_topic=origin)
    async with retry.agents[1].test_context() as first, retry.agents[3].test_context() as last:
        await first.put(click("a").to_json(), key=b"u1", headers=record_headers, wait=False)
        await until(lambda: len(forwarder.records) == 1)
        await last.put(click("b").to_json(), key=b"u1", headers=record_headers, wait=False)
        await until(lambda: len(forwarder.records) == 2)
    onwards, dead = forwarder.records
    assert onwards.topic == topics.retry_10s and onwards.headers[RecordHeader.RETRY_ATTEMPT] == b"2"
    assert int(onwards.headers[RecordHeader.RETRY_DUE]) >= now_ms() + DELAYS_S[1] * 1000 - 500
    assert dead.topic == topics.dead_letter
    assert dead.headers[RecordHeader.ERROR] == b"gave up after 3 retries: ConnectionError: still down"
    assert dead.headers[RecordHeader.RETRY_ATTEMPT] == b"3"
    assert dead.headers[RecordHeader.ORIGIN_TOPIC] == origin
    assert dead.headers[RecordHeader.TRACEPARENT] == TRACEPARENT
    assert RecordHeader.RETRY_DUE not in dead.headers


async def test_fetch_wait_is_the_configured_one(workers: tuple) -> None:
    primary, retry = workers
    for worker, wait_ms in (
        (primary, primary.settings.fetch_max_wait_ms),
        (retry, retry.settings.retry_fetch_max_wait_ms),
    ):
        consumer = internals.worker_consumer(worker.app)
        try:
            assert internals.fetch_max_wait_ms(consumer) == wait_ms
            assert consumer._fetch_max_wait_ms == wait_ms
        finally:
            await consumer.stop()
    assert (primary.settings.fetch_max_wait_s, retry.settings.retry_fetch_max_wait_s) == (0.05, 0.5)


@dataclass
class FakeClock:
    now: int = 1_000_000
    stop_at: int | None = None
    sleeps: list[int] = field(default_factory=list)

    def ms(self) -> int:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds * 1000))
        self.now += round(seconds * 1000)
        if self.stop_at is not None:
            self.now = min(self.now, self.stop_at)

    def stopping(self) -> bool:
        return self.stop_at is not None and self.now >= self.stop_at


def tier_record(event_id: str, due_ms: int) -> Incoming:
    return Incoming(
        "clicks.retry.1s", b"u1", click(event_id).to_json(), headers(atelier_retry_due_ms=str(due_ms).encode())
    )


async def test_tier_applies_due_records_at_once_and_sleeps_until_each_later_one() -> None:
    clock = FakeClock()
    writer, forwarder = FakeWriter(), FakeForwarder()
    handler = ClickHandler(writer, forwarder, (), "dlq", apply_timeout_s=1.0, clock_ms=clock.ms)
    waiter = DueWaiter(sleep=clock.sleep, stopping=clock.stopping, clock_ms=clock.ms)
    records = [tier_record("a", clock.now - 5), tier_record("b", clock.now), tier_record("c", clock.now + 700)]
    records.append(tier_record("d", clock.now + 900))
    await process_tier_batch(records, 1, handler, waiter, forwarder)
    assert [[event.event_id for event in call] for call in writer.calls] == [["a", "b"], ["c"], ["d"]]
    assert clock.sleeps == [700, 200]
    assert forwarder.records == []


async def test_tier_stopping_while_waiting_publishes_the_rest_unchanged_to_its_own_topic() -> None:
    clock = FakeClock()
    clock.stop_at = clock.now + 100
    writer, forwarder = FakeWriter(), FakeForwarder()
    handler = ClickHandler(writer, forwarder, (), "dlq", apply_timeout_s=1.0, clock_ms=clock.ms)
    waiter = DueWaiter(sleep=clock.sleep, stopping=clock.stopping, clock_ms=clock.ms)
    records = [tier_record("a", clock.now), tier_record("b", clock.now + 5_000), tier_record("c", clock.now + 5_000)]
    await process_tier_batch(records, 1, handler, waiter, forwarder)
    assert [[event.event_id for event in call] for call in writer.calls] == [["a"]]
    assert [(record.topic, record.value, record.headers) for record in forwarder.records] == [
        (record.topic, record.value, dict(record.headers)) for record in records[1:]
    ]
