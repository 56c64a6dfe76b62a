"""Settings of the ranker service (RANKER_* and the shared ATELIER_* ones)."""

from __future__ import annotations

from pydantic import Field, PositiveInt

from atelier.serving.settings import ServiceSettings
from services.ranker.policy import BoostSettings


class RankerSettings(ServiceSettings, env_prefix="RANKER_"):
    boost: BoostSettings = Field(default_factory=BoostSettings)

    max_candidates: PositiveInt = 1000
    """Candidates (and item signals) accepted per request."""
