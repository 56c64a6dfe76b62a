"""A click as it travels through Kafka: the record value (JSON) and its validation.

The features service writes it (EventsService.RecordClick); the stream app
reads it and applies it to Redis. Keyed by user id, so one user's clicks stay
in order on one partition.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from atelier.serving.ids import id_problem

SOURCES = frozenset({"search", "recommendation", "popular", "other"})
DEVICES = frozenset({"web", "ios", "android", "other"})
MAX_QUERY_CHARS = 512


class RecordHeader:
    """The Kafka record headers a click carries (names are plain strings)."""

    TRACEPARENT = "traceparent"  # W3C trace context, from the edge
    RETRY_ATTEMPT = "atelier-retry-attempt"  # retries scheduled so far
    RETRY_DUE = "atelier-retry-due-ms"  # when a retry tier may apply it
    ERROR = "atelier-error"  # why it was re-routed
    ORIGIN_TOPIC = "atelier-origin-topic"  # the topic it was first published to


class InvalidClick(ValueError):
    """A record that can never be applied (a permanent failure): it goes to the dead-letter topic."""


@dataclass(frozen=True)
class ClickRecord:
    event_id: str
    user_id: str
    item_id: str
    position: int
    source: str
    device: str
    event_time_ms: int
    query: str = ""
    session_id: str = ""

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, raw: bytes | str) -> ClickRecord:
        """Decodes and validates a record value; raises InvalidClick with the reason."""
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as error:
            raise InvalidClick(f"undecodable JSON: {error}") from None
        if not isinstance(data, dict):
            raise InvalidClick("the record is not a JSON object")
        try:
            record = cls(
                event_id=_text(data, "event_id"),
                user_id=_text(data, "user_id"),
                item_id=_text(data, "item_id"),
                position=_integer(data, "position"),
                source=_text(data, "source"),
                device=_text(data, "device"),
                event_time_ms=_integer(data, "event_time_ms"),
                query=_text(data, "query", required=False),
                session_id=_text(data, "session_id", required=False),
            )
        except KeyError as missing:
            raise InvalidClick(f"missing field {missing}") from None
        problems = record.problems()
        if problems:
            raise InvalidClick("; ".join(f"{field}: {reason}" for field, reason in problems))
        return record

    def problems(self) -> list[tuple[str, str]]:
        """(field, reason) for every invalid field; empty when the click is valid."""
        found = []
        # Ids become parts of Redis keys (atelier.serving.ids).
        for field, required in (("event_id", True), ("user_id", True), ("item_id", True), ("session_id", False)):
            problem = id_problem(getattr(self, field), required)
            if problem:
                found.append((field, problem))
        if self.position < 0:
            found.append(("position", "must be >= 0"))
        if self.source not in SOURCES:
            found.append(("source", f"must be one of {', '.join(sorted(SOURCES))}"))
        if self.device not in DEVICES:
            found.append(("device", f"must be one of {', '.join(sorted(DEVICES))}"))
        if self.event_time_ms <= 0:
            found.append(("event_time", "must be set"))
        if len(self.query) > MAX_QUERY_CHARS:
            found.append(("query", f"must be at most {MAX_QUERY_CHARS} characters"))
        return found


def _text(data: dict, field: str, required: bool = True) -> str:
    if field not in data:
        if required:
            raise KeyError(field)
        return ""
    value = data[field]
    if not isinstance(value, str):
        raise InvalidClick(f"{field}: must be a string")
    return value


def _integer(data: dict, field: str) -> int:
    value = data[field]
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidClick(f"{field}: must be an integer")
    return value
