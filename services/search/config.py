"""Settings of the search service, read from the environment in one place."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from atelier.serving.circuit_breaker import BreakerSettings
from atelier.serving.config import env_bool, env_float, env_int, env_str
from atelier.serving.settings import Endpoints


@dataclass(frozen=True)
class SearchSettings:
    endpoints: Endpoints
    text_model: str
    collection: str
    default_k: int
    max_k: int
    max_query_chars: int
    # ANN candidates fetched per request (later stages rerank and boost them).
    candidates: int
    hnsw_ef: int
    embed_timeout_s: float
    ann_timeout_s: float
    # Deadline of each call to the features service and the ranker.
    personalisation_timeout_s: float
    embedding_cache_size: int
    # Cross-encoder rerank of the top `rerank_candidates` within `rerank_budget_s`; the stack
    # turns it off when no reranker weights exist.
    rerank_enabled: bool
    rerank_model: str
    rerank_candidates: int
    rerank_budget_s: float
    rerank_cache_size: int
    # Rerank calls in flight at once per instance (0: no limit); beyond it, retrieval order at once.
    rerank_max_in_flight: int
    # How often the known filter values are re-read from the feature store.
    filter_values_refresh_s: float
    # Image and hybrid search (CLIP); the stack turns it off when no CLIP weights exist.
    vision_enabled: bool
    image_collection: str
    clip_image_model: str
    clip_text_model: str
    clip_timeout_s: float
    max_image_bytes: int
    max_image_pixels: int
    # Hybrid search: weight of each recall list (its scores min-max normalised) in the merge.
    hybrid_text_weight: float
    hybrid_clip_text_weight: float
    hybrid_image_weight: float
    # One circuit breaker per downstream (Triton, Milvus, features, ranker).
    breaker: BreakerSettings

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SearchSettings:
        env = os.environ if env is None else env
        return cls(
            endpoints=Endpoints.from_env(env),
            text_model=env_str(env, "SEARCH_TEXT_MODEL", "text_embedding"),
            collection=env_str(env, "SEARCH_COLLECTION", "articles_text"),
            default_k=env_int(env, "SEARCH_DEFAULT_K", 10),
            max_k=env_int(env, "SEARCH_MAX_K", 100),
            max_query_chars=env_int(env, "SEARCH_MAX_QUERY_CHARS", 512),
            candidates=env_int(env, "SEARCH_CANDIDATES", 100),
            hnsw_ef=env_int(env, "SEARCH_HNSW_EF", 128),
            embed_timeout_s=env_float(env, "SEARCH_EMBED_TIMEOUT_S", 1.0),
            ann_timeout_s=env_float(env, "SEARCH_ANN_TIMEOUT_S", 0.5),
            personalisation_timeout_s=env_float(env, "SEARCH_PERSONALISATION_TIMEOUT_S", 0.2),
            embedding_cache_size=env_int(env, "SEARCH_EMBEDDING_CACHE_SIZE", 10_000),
            rerank_enabled=env_bool(env, "SEARCH_RERANK_ENABLED", True),
            rerank_model=env_str(env, "SEARCH_RERANK_MODEL", "reranker"),
            rerank_candidates=env_int(env, "SEARCH_RERANK_CANDIDATES", 100),
            rerank_budget_s=env_int(env, "SEARCH_RERANK_BUDGET_MS", 300) / 1000,
            rerank_cache_size=env_int(env, "SEARCH_RERANK_CACHE_SIZE", 100_000),
            rerank_max_in_flight=env_int(env, "SEARCH_RERANK_MAX_IN_FLIGHT", 2),
            filter_values_refresh_s=env_float(env, "SEARCH_FILTER_VALUES_REFRESH_S", 30.0),
            vision_enabled=env_bool(env, "VISION_ENABLED", False),
            image_collection=env_str(env, "SEARCH_IMAGE_COLLECTION", "articles_image"),
            clip_image_model=env_str(env, "SEARCH_CLIP_IMAGE_MODEL", "clip_image"),
            clip_text_model=env_str(env, "SEARCH_CLIP_TEXT_MODEL", "clip_text"),
            clip_timeout_s=env_float(env, "SEARCH_CLIP_TIMEOUT_S", 1.0),
            max_image_bytes=env_int(env, "SEARCH_MAX_IMAGE_BYTES", 4 * 1024 * 1024),
            max_image_pixels=env_int(env, "SEARCH_MAX_IMAGE_PIXELS", 25_000_000),
            hybrid_text_weight=env_float(env, "SEARCH_HYBRID_TEXT_WEIGHT", 0.5),
            hybrid_clip_text_weight=env_float(env, "SEARCH_HYBRID_CLIP_TEXT_WEIGHT", 0.2),
            hybrid_image_weight=env_float(env, "SEARCH_HYBRID_IMAGE_WEIGHT", 0.3),
            breaker=BreakerSettings(
                window=env_int(env, "SEARCH_BREAKER_WINDOW", BreakerSettings.window),
                failure_rate=env_float(env, "SEARCH_BREAKER_FAILURE_RATE", BreakerSettings.failure_rate),
                minimum_calls=env_int(env, "SEARCH_BREAKER_MINIMUM_CALLS", BreakerSettings.minimum_calls),
                open_s=env_float(env, "SEARCH_BREAKER_OPEN_S", BreakerSettings.open_s),
                half_open_calls=env_int(env, "SEARCH_BREAKER_HALF_OPEN_CALLS", BreakerSettings.half_open_calls),
            ),
        )
