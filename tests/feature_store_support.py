"""A synchronous ClickWriter for tests that drive Redis without an event loop."""

from __future__ import annotations

from collections.abc import Sequence

import redis
from redis.exceptions import ResponseError

from atelier.serving.click_event import ClickRecord
from atelier.serving.feature_store.writer import (
    SCRIPT,
    WriterSettings,
    applied_flags,
    script_args,
    script_header,
    stored_data_error,
)


class SyncClickWriter:
    """ClickWriter for a synchronous client."""

    def __init__(self, client: redis.Redis, settings: WriterSettings | None = None) -> None:
        self._header = script_header(settings or WriterSettings())
        self._script = client.register_script(SCRIPT)

    def apply(self, events: Sequence[ClickRecord], now_ms: int | None = None) -> list[bool]:
        if not events:
            return []
        args = script_args(self._header, events, now_ms)
        try:
            result = self._script(keys=[], args=args)
        except ResponseError as error:
            raise (stored_data_error(error) or error) from None
        return applied_flags(events, result)
