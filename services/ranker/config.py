"""Settings of the ranker service, read from the environment in one place."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from atelier.serving.config import env_bool, env_float, env_int
from atelier.serving.settings import Endpoints
from services.ranker.policy import BoostSettings


@dataclass(frozen=True)
class RankerSettings:
    endpoints: Endpoints
    # Candidates (and item signals) accepted per request.
    max_candidates: int
    boost: BoostSettings

    def __post_init__(self) -> None:
        if self.max_candidates < 1:
            raise ValueError(f"RANKER_MAX_CANDIDATES must be at least 1, got {self.max_candidates}")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RankerSettings:
        env = os.environ if env is None else env
        d = BoostSettings()
        return cls(
            endpoints=Endpoints.from_env(env),
            max_candidates=env_int(env, "RANKER_MAX_CANDIDATES", 1000),
            boost=BoostSettings(
                recent_click_boost=env_float(env, "RANKER_RECENT_CLICK_BOOST", d.recent_click_boost),
                category_boost=env_float(env, "RANKER_CATEGORY_BOOST", d.category_boost),
                affinity_scaling=env_bool(env, "RANKER_AFFINITY_SCALING", d.affinity_scaling),
                affinity_saturation=env_float(env, "RANKER_AFFINITY_SATURATION", d.affinity_saturation),
                popularity_weight_1h=env_float(env, "RANKER_POPULARITY_WEIGHT_1H", d.popularity_weight_1h),
                popularity_weight_24h=env_float(env, "RANKER_POPULARITY_WEIGHT_24H", d.popularity_weight_24h),
                popularity_weight_7d=env_float(env, "RANKER_POPULARITY_WEIGHT_7D", d.popularity_weight_7d),
                max_boost=env_float(env, "RANKER_MAX_BOOST", d.max_boost),
                popularity_for_anonymous=env_bool(env, "RANKER_POPULARITY_FOR_ANONYMOUS", d.popularity_for_anonymous),
            ),
        )
