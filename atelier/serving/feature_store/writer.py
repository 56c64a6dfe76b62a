"""Applies click events to the online feature store: one Lua script call per batch (apply_clicks.lua).

A batch is atomic: every event of it is applied (or recognised as a duplicate),
or, when the script finds a problem, nothing is written. Errors are redis-py's
exceptions: connection errors and timeouts are transient (retry the batch);
StoredDataError (a ResponseError) names the event whose keys hold unexpected data.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from atelier.serving import popularity
from atelier.serving.click_event import ClickRecord, InvalidClick
from atelier.serving.config import env_float, env_int
from atelier.serving.feature_store import keys

SCRIPT = resources.files(__package__).joinpath("apply_clicks.lua").read_text()
_ERROR = re.compile(r"FEATURESTORE event=(\d+) id=")
DAY_S = 86400.0


@dataclass(frozen=True)
class WriterSettings:
    dedupe_ttl_s: float = 7 * DAY_S
    user_ttl_s: float = 30 * DAY_S
    # Not a spec requirement: bounds the keys of articles that stop being clicked
    # (after 30 days a score has decayed to ~5 %).
    item_ttl_s: float = 30 * DAY_S
    session_ttl_s: float = 30 * 60.0
    recent_cap: int = 20
    session_cap: int = 50
    global_max_items: int = popularity.GLOBAL_MAX_ITEMS

    def __post_init__(self) -> None:
        for name in ("dedupe_ttl_s", "user_ttl_s", "item_ttl_s", "session_ttl_s"):
            if getattr(self, name) < 0.001:
                raise ValueError(f"{name} must be at least 1 ms")
        for name in ("recent_cap", "session_cap", "global_max_items"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WriterSettings:
        env = os.environ if env is None else env
        default = cls()
        return cls(
            dedupe_ttl_s=env_float(env, "FEATURES_DEDUPE_TTL_S", default.dedupe_ttl_s),
            user_ttl_s=env_float(env, "FEATURES_USER_TTL_S", default.user_ttl_s),
            item_ttl_s=env_float(env, "FEATURES_ITEM_TTL_S", default.item_ttl_s),
            session_ttl_s=env_float(env, "FEATURES_SESSION_TTL_S", default.session_ttl_s),
            recent_cap=env_int(env, "FEATURES_RECENT_CAP", default.recent_cap),
            session_cap=env_int(env, "FEATURES_SESSION_CAP", default.session_cap),
            global_max_items=env_int(env, "FEATURES_GLOBAL_MAX_ITEMS", default.global_max_items),
        )


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
        """Per event, True if applied, False if it was a duplicate. `now_ms` (tests) replaces the server clock,
        which decides only which popularity buckets are already expired."""
        if not events:
            return []
        args = script_args(self._header, events, now_ms)
        try:
            result = await self._script(keys=[], args=args)
        except ResponseError as error:
            raise (stored_data_error(error) or error) from None
        return [flag == 1 for flag in result]
