"""Settings of the features service (FEATURES_* and the shared ATELIER_* ones)."""

from __future__ import annotations

from pydantic import Field, NonNegativeFloat, PositiveFloat, PositiveInt

from atelier.serving.feature_store.reader import ReaderSettings
from atelier.serving.settings import ServiceSettings
from atelier.serving.topics import Topics


class FeaturesSettings(ServiceSettings, env_prefix="FEATURES_"):
    topics: Topics = Field(default_factory=Topics)
    reader: ReaderSettings = Field(default_factory=ReaderSettings)

    publish_timeout_s: PositiveFloat = 2.0
    """How long the broker may take to acknowledge a click before RecordClick answers UNAVAILABLE."""
    producer_linger_s: NonNegativeFloat = 0.001
    """Producer batching: a small linger trades a millisecond for fewer requests under load."""
    redis_timeout_s: PositiveFloat = 0.25
    """Socket timeout of the service's Redis calls."""
    max_batch_article_ids: PositiveInt = 1000
    """Most article ids one BatchGetItemSignals may ask for."""
    default_k: PositiveInt = 10
    """Popular items when ListPopularItems leaves k at 0."""
    max_k: PositiveInt = 100
    """Most popular items ListPopularItems may ask for."""
