"""What both workers do with a batch of click records: apply, dead-letter or route onwards.

`handle` returns once every record of the batch is settled: applied to Redis
(or recognised as a duplicate), or published, with the broker's acknowledgement,
to the dead-letter topic (a permanent failure) or to the next retry tier (a
transient one). Only then may the caller acknowledge the records to Faust.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from atelier.serving.click_event import ClickRecord, InvalidClick
from atelier.serving.feature_store.writer import StoredDataError
from atelier.serving.tracing import consumer_spans
from services.stream.config import RetryTier
from services.stream.forwarder import Forwarder
from services.stream.metrics import StreamMetrics
from services.stream.records import Incoming, Outgoing, dead_letter_record, retry_record

log = logging.getLogger(__name__)


class Applier(Protocol):
    """atelier.serving.feature_store.writer.ClickWriter: one atomic Lua call per batch."""

    async def apply(self, events: Sequence[ClickRecord]) -> list[bool]: ...


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class Outcome:
    applied: int = 0
    duplicates: int = 0
    # Of each applied click: milliseconds from its timestamp to its write in Redis.
    visible_after_ms: list[int] = field(default_factory=list)
    # Records re-routed, by retry tier (its topic) and by dead-letter reason (services.stream.metrics).
    retries: dict[str, int] = field(default_factory=dict)
    dead_letters: dict[str, int] = field(default_factory=dict)

    @property
    def dead_lettered(self) -> int:
        return sum(self.dead_letters.values())

    @property
    def retried(self) -> int:
        return sum(self.retries.values())


def describe(error: BaseException) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class ClickHandler:
    def __init__(
        self,
        writer: Applier,
        forwarder: Forwarder,
        tiers: Sequence[RetryTier],
        dead_letter_topic: str,
        apply_timeout_s: float,
        clock_ms: Callable[[], int] = wall_ms,
        metrics: StreamMetrics | None = None,
    ) -> None:
        self._writer = writer
        self._forwarder = forwarder
        self._tiers = tuple(tiers)
        self._dead_letter_topic = dead_letter_topic
        self._apply_timeout_s = apply_timeout_s
        self._clock_ms = clock_ms
        self._metrics = metrics

    async def handle(self, records: Sequence[Incoming], attempt: int) -> Outcome:
        """Settles a batch whose records have had `attempt` retries (0: from the clicks topic), in the
        traces its records carry (their `traceparent`): the Redis apply is a child of the first."""
        topic = records[0].topic if records else ""
        with consumer_spans(topic, [record.headers for record in records]):
            started = time.perf_counter()
            outcome = await self._settle(records, attempt)
        if self._metrics is not None:
            self._metrics.settled(topic, time.perf_counter() - started, outcome)
        return outcome

    async def _settle(self, records: Sequence[Incoming], attempt: int) -> Outcome:
        outcome = Outcome()
        outgoing: list[Outgoing] = []
        valid: list[tuple[Incoming, ClickRecord]] = []
        for record in records:
            try:
                valid.append((record, ClickRecord.from_json(record.value or b"")))
            except InvalidClick as error:
                outgoing.append(self._dead_letter(outcome, "invalid", record, f"invalid click: {error}"))
        while valid:
            try:
                flags = await asyncio.wait_for(
                    self._writer.apply([click for _, click in valid]), timeout=self._apply_timeout_s
                )
            except StoredDataError as error:
                # Permanent for that one event (its keys hold unexpected data); the script wrote nothing.
                if not 0 <= error.event_index < len(valid):
                    outgoing += [self._onwards(outcome, record, attempt, describe(error)) for record, _ in valid]
                    break
                record, _ = valid.pop(error.event_index)
                outgoing.append(self._dead_letter(outcome, "stored_data", record, describe(error)))
                continue
            except Exception as error:  # noqa: BLE001 (redis errors, timeouts and anything unforeseen: retry)
                log.warning("applying %d clicks failed (attempt %d): %s", len(valid), attempt, describe(error))
                outgoing += [self._onwards(outcome, record, attempt, describe(error)) for record, _ in valid]
                break
            outcome.applied += sum(flags)
            outcome.duplicates += len(flags) - sum(flags)
            now_ms = self._clock_ms()
            outcome.visible_after_ms = [
                now_ms - click.event_time_ms for (_, click), new in zip(valid, flags, strict=True) if new
            ]
            break
        await self._forwarder.forward(outgoing)
        if outcome.dead_lettered:
            log.warning("dead-lettered %d records", outcome.dead_lettered)
        return outcome

    def _onwards(self, outcome: Outcome, record: Incoming, attempt: int, error: str) -> Outgoing:
        if attempt < len(self._tiers):
            tier = self._tiers[attempt]
            due_ms = self._clock_ms() + round(tier.delay_s * 1000)
            outcome.retries[tier.topic] = outcome.retries.get(tier.topic, 0) + 1
            return retry_record(record, tier.topic, tier.attempt, due_ms, error)
        reason = f"gave up after {attempt} retries: {error}"
        return self._dead_letter(outcome, "retries_exhausted", record, reason, attempt)

    def _dead_letter(
        self, outcome: Outcome, kind: str, record: Incoming, reason: str, attempt: int | None = None
    ) -> Outgoing:
        """The record for the dead-letter topic, counted under `kind` (services.stream.metrics)."""
        outcome.dead_letters[kind] = outcome.dead_letters.get(kind, 0) + 1
        return dead_letter_record(record, self._dead_letter_topic, reason, attempt)
