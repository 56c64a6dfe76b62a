"""Applies click events to the online feature store: one Lua script call per batch (apply_clicks.lua).

A batch is atomic: every event of it is applied (or recognised as a duplicate, or
left out because its article is not in the catalogue), or, when the script finds a
problem, nothing is written. Errors are redis-py's
exceptions: connection errors and timeouts are transient (retry the batch);
StoredDataError (a ResponseError) names the event whose keys hold unexpected data.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from importlib import resources

import redis.asyncio as aioredis
from pydantic import Field, PositiveInt
from pydantic_settings import SettingsConfigDict
from redis.exceptions import ResponseError

from atelier.serving import popularity
from atelier.serving.click_event import ClickRecord, InvalidClick
from atelier.serving.feature_store import keys
from atelier.serving.settings import Settings

log = logging.getLogger(__name__)

# The script's answer per event.
APPLIED, DUPLICATE, UNKNOWN_ARTICLE = 1, 0, 2
SCRIPT = resources.files(__package__).joinpath("apply_clicks.lua").read_text()
_ERROR = re.compile(r"FEATURESTORE event=(\d+) id=")
DAY_S = 86400.0


class WriterSettings(Settings):
    """What the click writer keeps in Redis and for how long: STREAM_*, as only the stream workers write the store."""

    model_config = SettingsConfigDict(env_prefix="STREAM_")

    dedupe_ttl_s: float = Field(7 * DAY_S, ge=0.001)
    """How long an applied click's event id is remembered, so that a redelivered click is not applied again."""
    user_ttl_s: float = Field(30 * DAY_S, ge=0.001)
    """How long a user's keys (recent clicks, profile, category affinity) live after their last click."""
    item_ttl_s: float = Field(30 * DAY_S, ge=0.001)
    """How long an article's decayed click score lives after its last click. Not a spec requirement:
    bounds the keys of articles that stop being clicked (after 30 days a score has decayed to ~5 %)."""
    session_ttl_s: float = Field(30 * 60.0, ge=0.001)
    """How long a session's click list lives after its last click."""
    recent_cap: PositiveInt = 20
    """Most entries of a user's recent-clicks list (newest kept)."""
    session_cap: PositiveInt = 50
    """Most entries of a session's click list (newest kept)."""
    global_max_items: PositiveInt = popularity.GLOBAL_MAX_ITEMS
    """Most articles kept in the all-time (decayed) popularity ranking."""


class StoredDataError(ResponseError):
    """A key or stored number the batch needs holds something unexpected; the script wrote nothing.

    Retrying will not help while the data stays as it is: apply the batch's other
    events without `event_index` (or one by one) and dead-letter that one.
    """

    def __init__(self, message: str, event_index: int) -> None:
        super().__init__(message)
        self.event_index = event_index


def script_header(settings: WriterSettings) -> list[str | int]:
    """The script's ARGV after now_ms and before the events (layout documented in apply_clicks.lua)."""
    header: list[str | int] = [
        _ms(settings.dedupe_ttl_s),
        _ms(settings.user_ttl_s),
        _ms(settings.item_ttl_s),
        _ms(settings.session_ttl_s),
        settings.recent_cap,
        settings.session_cap,
        repr(popularity.DECAY_RATE),
        popularity.GLOBAL_KEY,
        popularity.GLOBAL_EPOCH_S,
        settings.global_max_items,
        len(popularity.WINDOWS),
    ]
    for window in popularity.WINDOWS:
        header += [keys.bucket_prefix(window), window.bucket_s, window.expires_at(0) - window.bucket_start(0)]
    return header + keys.script_patterns()


def script_args(header: list[str | int], events: Sequence[ClickRecord], now_ms: int | None) -> list[str | int]:
    """The script's full ARGV; raises InvalidClick for an event the script cannot apply."""
    args: list[str | int] = [0 if now_ms is None else now_ms, *header]
    for event in events:
        problems = event.problems()
        if problems:
            raise InvalidClick(f"event {event.event_id!r}: " + "; ".join(f"{f}: {r}" for f, r in problems))
        args += [event.event_id, event.user_id, event.item_id, event.event_time_ms, event.session_id]
    return args


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def stored_data_error(error: ResponseError) -> StoredDataError | None:
    match = _ERROR.match(str(error))
    return StoredDataError(str(error), int(match.group(1))) if match else None


class ClickWriter:
    """Applies batches of clicks with EVALSHA (redis-py's Script reloads it after NOSCRIPT)."""

    def __init__(self, client: aioredis.Redis, settings: WriterSettings | None = None) -> None:
        self._header = script_header(settings or WriterSettings())
        self._script = client.register_script(SCRIPT)

    async def apply(self, events: Sequence[ClickRecord], now_ms: int | None = None) -> list[bool]:
        """Per event, True if applied, False if it was a duplicate or its article is not in the catalogue.
        `now_ms` (tests) replaces the server clock, which decides only which popularity buckets are already expired."""
        if not events:
            return []
        args = script_args(self._header, events, now_ms)
        try:
            result = await self._script(keys=[], args=args)
        except ResponseError as error:
            raise (stored_data_error(error) or error) from None
        return applied_flags(events, result)


def applied_flags(events: Sequence[ClickRecord], result: Sequence[int]) -> list[bool]:
    """The script's answers as applied or not; clicks on unknown articles are logged."""
    unknown = [event for event, flag in zip(events, result, strict=True) if flag == UNKNOWN_ARTICLE]
    if unknown:
        log.warning(
            "clicks on articles not in the catalogue dropped",
            extra={"count": len(unknown), "articles": sorted({event.item_id for event in unknown})[:10]},
        )
    return [flag == APPLIED for flag in result]
