"""Settings of the features service, read from the environment in one place."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from atelier.serving.config import env_float, env_int
from atelier.serving.settings import Endpoints
from atelier.serving.topics import Topics


@dataclass(frozen=True)
class FeaturesSettings:
    endpoints: Endpoints
    topics: Topics
    # How long the broker may take to acknowledge a click before RecordClick answers UNAVAILABLE.
    publish_timeout_s: float
    # Producer batching: a small linger trades a millisecond for fewer requests under load.
    producer_linger_ms: int
    redis_timeout_s: float
    max_batch_article_ids: int
    default_k: int
    max_k: int

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> FeaturesSettings:
        env = os.environ if env is None else env
        return cls(
            endpoints=Endpoints.from_env(env),
            topics=Topics.from_env(env),
            publish_timeout_s=env_float(env, "FEATURES_PUBLISH_TIMEOUT_S", 2.0),
            producer_linger_ms=env_int(env, "FEATURES_PRODUCER_LINGER_MS", 1),
            redis_timeout_s=env_float(env, "FEATURES_REDIS_TIMEOUT_S", 0.25),
            max_batch_article_ids=env_int(env, "FEATURES_MAX_BATCH_ARTICLE_IDS", 1000),
            default_k=env_int(env, "FEATURES_DEFAULT_K", 10),
            max_k=env_int(env, "FEATURES_MAX_K", 100),
        )
