"""Awaiting several requests that only make sense together."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable
from typing import TypeVar

T = TypeVar("T")


async def all_or_none(awaitables: Iterable[Awaitable[T]]) -> list[T]:
    """Each result, in order; the first failure (or a cancellation of the caller) cancels the others and is
    raised as it is (asyncio.gather leaves them running; a TaskGroup would raise an ExceptionGroup)."""
    tasks = [asyncio.ensure_future(awaitable) for awaitable in awaitables]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        raise
