"""The catalogue's known filter values, refreshed from the feature store in the background."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import redis.asyncio as aioredis

from atelier.serving import redis_clients
from atelier.serving.item_store import read_filter_values
from atelier.serving.settings import Endpoints

log = logging.getLogger(__name__)


class FilterValues:
    """attribute -> {lower-cased value: value}; None until first read (then values pass unchecked)."""

    def __init__(self, endpoints: Endpoints, refresh_s: float) -> None:
        self._client = redis_clients.async_client(endpoints, socket_timeout=1.0, socket_connect_timeout=1.0)
        self._refresh_s = refresh_s
        self._task: asyncio.Task[None] | None = None
        self.values: dict[str, dict[str, str]] | None = None

    async def refresh(self) -> None:
        try:
            values = await read_filter_values(self._client)
        except (aioredis.RedisError, OSError) as error:
            log.warning("cannot read filter values", extra={"error": str(error)})
            return
        # An empty catalogue teaches nothing: keep accepting values unchecked.
        self.values = values if any(values.values()) else None

    async def _loop(self) -> None:
        while True:
            await self.refresh()
            # Until a catalogue is loaded, look again soon.
            await asyncio.sleep(self._refresh_s if self.values else min(self._refresh_s, 2.0))

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._client.aclose()
