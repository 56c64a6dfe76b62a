"""Click records as the stream workers see them, and the headers of those they re-route."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from faust.types import EventT

from atelier.serving.click_event import RecordHeader

# Longest reason kept in a header: a whole traceback does not belong in a record.
MAX_ERROR_CHARS = 1000


@dataclass(frozen=True)
class Incoming:
    """One consumed record: its raw key and value, its headers and where it came from."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: Mapping[str, bytes] = field(default_factory=dict)

    @property
    def attempt(self) -> int:
        """Retries already scheduled for this click (0 on the clicks topic)."""
        return _int_header(self.headers, RecordHeader.RETRY_ATTEMPT) or 0

    @property
    def due_ms(self) -> int | None:
        return _int_header(self.headers, RecordHeader.RETRY_DUE)

    @property
    def origin_topic(self) -> str:
        """The topic the click was first published to."""
        origin = self.headers.get(RecordHeader.ORIGIN_TOPIC)
        return origin.decode(errors="replace") if origin else self.topic


def incoming(event: EventT) -> Incoming:
    return Incoming(event.message.topic, event.key, event.value, event.headers)


@dataclass(frozen=True)
class Outgoing:
    topic: str
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes]


def retry_record(record: Incoming, topic: str, attempt: int, due_ms: int, error: str) -> Outgoing:
    """The record for retry `attempt`, due at `due_ms`; every other header (traceparent) is kept."""
    headers = dict(record.headers) | {
        RecordHeader.RETRY_ATTEMPT: str(attempt).encode(),
        RecordHeader.RETRY_DUE: str(due_ms).encode(),
        RecordHeader.ORIGIN_TOPIC: record.origin_topic.encode(),
        RecordHeader.ERROR: _reason(error),
    }
    return Outgoing(topic, record.key, record.value, headers)


def dead_letter_record(record: Incoming, topic: str, reason: str, attempt: int | None = None) -> Outgoing:
    """The raw record with the reason, its origin topic and, after retries, how many were made."""
    headers = dict(record.headers)
    headers.pop(RecordHeader.RETRY_DUE, None)
    headers |= {RecordHeader.ORIGIN_TOPIC: record.origin_topic.encode(), RecordHeader.ERROR: _reason(reason)}
    if attempt is not None:
        headers[RecordHeader.RETRY_ATTEMPT] = str(attempt).encode()
    return Outgoing(topic, record.key, record.value, headers)


def same_record(record: Incoming) -> Outgoing:
    """The record unchanged, to be published again to its own topic."""
    return Outgoing(record.topic, record.key, record.value, dict(record.headers))


def _reason(text: str) -> bytes:
    return text[:MAX_ERROR_CHARS].encode(errors="replace")


def _int_header(headers: Mapping[str, bytes], name: str) -> int | None:
    raw = headers.get(name)
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        return None
