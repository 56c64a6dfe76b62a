"""An in-process LRU cache of query embeddings.

Popular queries repeat; an embedding costs milliseconds of model compute, a
hit costs microseconds. Concurrent misses of the same query share one call.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

import numpy as np
from prometheus_client import Counter

CACHE_LOOKUPS = Counter("search_embedding_cache_lookups_total", "Query embedding cache lookups.", ["result"])


K = TypeVar("K", bound=Hashable)


class EmbeddingCache(Generic[K]):
    """Embeddings by key: a query's text, with the model version that embeds it where versions differ."""

    def __init__(self, capacity: int, compute: Callable[[K], Awaitable[np.ndarray]]) -> None:
        self._capacity = capacity
        self._compute = compute
        self._entries: OrderedDict[K, np.ndarray] = OrderedDict()
        self._pending: dict[K, asyncio.Future[np.ndarray]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, query: K) -> tuple[np.ndarray, bool]:
        """The query's embedding and whether it came from the cache."""
        if (vector := self._entries.get(query)) is not None:
            self._entries.move_to_end(query)
            CACHE_LOOKUPS.labels("hit").inc()
            return vector, True
        CACHE_LOOKUPS.labels("miss").inc()
        if (pending := self._pending.get(query)) is not None:
            return await asyncio.shield(pending), False
        future: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        self._pending[query] = future
        try:
            vector = await self._compute(query)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as error:
            future.set_exception(error)
            future.exception()  # retrieved: waiters re-raise it, nobody logs it as lost
            raise
        finally:
            self._pending.pop(query, None)
        future.set_result(vector)
        if self._capacity > 0:
            self._entries[query] = vector
            if len(self._entries) > self._capacity:
                self._entries.popitem(last=False)
        return vector, False
