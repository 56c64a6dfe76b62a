"""A value kept current by asking for it again every few seconds, in the background."""

from __future__ import annotations

import asyncio
import contextlib
import logging

log = logging.getLogger(__name__)


class Poller:
    """Calls `poll()` once at `start()`, then every `interval_s` until `stop()`; a failed poll is logged
    and the next one tried, so what the last good poll learnt stays in force."""

    name = "poller"

    def __init__(self, interval_s: float) -> None:
        self._interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    async def poll(self) -> None:
        raise NotImplementedError

    async def start(self) -> None:
        await self._poll_once()
        self._task = asyncio.create_task(self._watch(), name=self.name)

    async def _poll_once(self) -> None:
        try:
            await self.poll()
        except Exception:  # the watch must outlive any one failed poll
            log.warning("%s: poll failed", self.name, exc_info=True)

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            await self._poll_once()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
