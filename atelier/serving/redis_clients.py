"""Redis clients for every part of Atelier: a single server or a cluster (ATELIER_REDIS_CLUSTER), by configuration.

The feature store's keys are hash-tagged and its scripts declare every key they touch
(atelier.serving.feature_store.keys), so the same calls run on both; only the client differs.
"""

from __future__ import annotations

from typing import Any

import redis
import redis.asyncio as aioredis

from atelier.serving.settings import Endpoints

AsyncRedis = aioredis.Redis | aioredis.RedisCluster
SyncRedis = redis.Redis | redis.RedisCluster


def async_client(endpoints: Endpoints, **options: Any) -> AsyncRedis:
    """An asyncio client of the configured Redis; `options` are redis-py's (timeouts, retry, decoding)."""
    if endpoints.redis_cluster:
        return aioredis.RedisCluster.from_url(endpoints.redis_url, **options)
    return aioredis.from_url(endpoints.redis_url, **options)


def sync_client(endpoints: Endpoints, **options: Any) -> SyncRedis:
    """A blocking client of the configured Redis (offline jobs, the CLI, tests)."""
    if endpoints.redis_cluster:
        return redis.RedisCluster.from_url(endpoints.redis_url, **options)
    return redis.Redis.from_url(endpoints.redis_url, **options)


def as_text(value: bytes | str) -> str:
    """A reply's bytes as text (clients made without decode_responses answer bytes)."""
    return value.decode() if isinstance(value, bytes) else value
