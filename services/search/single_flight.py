"""Identical searches in flight at the same moment share one run of the pipeline.

The first caller of a key starts the work; callers of the same key that arrive before it finishes
wait for the same result (or exception) instead of running it again. Nothing is kept once the run is
over: the next identical search runs afresh (a click made meanwhile counts). A caller that gives up
(its RPC cancelled) leaves the run going for the others; the run is cancelled only when every caller
waiting for it has gone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


@dataclass
class _Run(Generic[T]):
    task: asyncio.Future[T]
    waiters: int = 0


class SingleFlight(Generic[K, T]):
    def __init__(self) -> None:
        self._runs: dict[K, _Run[T]] = {}

    def in_flight(self) -> int:
        return len(self._runs)

    async def run(self, key: K, work: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        """The result of `work()`, run once for every concurrent caller of `key`; and whether this caller
        shared another's run."""
        run = self._runs.get(key)
        shared = run is not None and not run.task.done()
        if not shared:
            run = _Run(asyncio.ensure_future(work()))
            self._runs[key] = run
            run.task.add_done_callback(lambda _, key=key, run=run: self._forget(key, run))
        assert run is not None
        run.waiters += 1
        try:
            return await asyncio.shield(run.task), shared
        finally:
            run.waiters -= 1
            if run.waiters == 0 and not run.task.done():
                run.task.cancel()

    def _forget(self, key: K, run: _Run[T]) -> None:
        if self._runs.get(key) is run:
            del self._runs[key]
