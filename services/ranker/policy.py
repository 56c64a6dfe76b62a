"""The behaviour boost: how a user's clicks and the candidates' popularity reorder results.

Pure functions, no I/O. Per candidate the boost is

    personal   = recent_click_boost                      if the user recently clicked it
               = category factor (see `category_factor`)  elif its category has affinity > 0
               = 1                                        otherwise
    popularity = 1 + sum over windows w in (1h, 24h, 7d) of
                 weight_w * log1p(p_w) / log1p(max p_w over the candidate set)
                 (a window's term is 0 when its maximum is 0)
    boost      = min(personal * popularity, max_boost)

and the final score is the relevance score boosted (see `boosted_score`). Anonymous
requests get no personal factor, and no popularity factor unless
`popularity_for_anonymous`: their order is the relevance order.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from atelier.serving.settings import Settings

Boost = Annotated[float, Field(ge=1, allow_inf_nan=False)]
Weight = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class BoostSettings(Settings):
    """The ranker's boost settings (RANKER_*); no boost may lower a result."""

    model_config = SettingsConfigDict(env_prefix="RANKER_")

    recent_click_boost: Boost = 1.5
    """Factor of a candidate the user recently clicked."""
    category_boost: Boost = 1.2
    """Factor of a candidate in a category the user has affinity for (the ceiling when scaled)."""
    affinity_scaling: bool = True
    """Scale the category factor with the affinity: 1 + (category_boost - 1) * min(1, affinity / saturation);
    off: any affinity > 0 gets exactly category_boost."""
    affinity_saturation: float = Field(3.0, gt=0, allow_inf_nan=False)
    """The decayed click count at which a category earns the full category_boost."""
    popularity_weight_1h: Weight = 0.20
    """Weight of the last hour's popularity in the popularity factor."""
    popularity_weight_24h: Weight = 0.10
    """Weight of the last 24 hours' popularity."""
    popularity_weight_7d: Weight = 0.05
    """Weight of the last 7 days' popularity."""
    max_boost: Boost = 3.0
    """Cap of a candidate's total factor."""
    popularity_for_anonymous: bool = False
    """Boost anonymous results by popularity too (off: their order is the relevance order)."""


@dataclass(frozen=True)
class Candidate:
    article_id: str
    category: str
    # Relevance (rerank or retrieval) score.
    score: float


@dataclass(frozen=True)
class Popularity:
    """Clicks of one article in the last hour, day and week (decayed counts, >= 0)."""

    p1h: float = 0.0
    p24h: float = 0.0
    p7d: float = 0.0


@dataclass(frozen=True)
class UserBehaviour:
    """What is known of an identified user; empty for one without history."""

    recent_clicks: frozenset[str] = frozenset()
    # Category -> decayed affinity; categories with a score <= 0 do not count.
    category_affinities: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Trending:
    """The popularity window that added most to a candidate's popularity factor."""

    window: str  # "1h", "24h" or "7d"
    clicks: float  # the candidate's decayed clicks in it
    term: float  # what it added to the factor


@dataclass(frozen=True)
class Ranked:
    article_id: str
    score: float
    # score - relevance score; 0 when the boost is 1.
    behaviour_score: float
    boost: float
    # What the boost is made of (before the cap): why, for explanations.
    personal: float = 1.0
    personal_signal: str = ""  # "recent_click", "category_affinity" or "" (none)
    popularity: float = 1.0
    trending: Trending | None = None


def category_factor(affinity: float, settings: BoostSettings) -> float:
    if not affinity > 0:
        return 1.0
    if not settings.affinity_scaling:
        return settings.category_boost
    return 1.0 + (settings.category_boost - 1.0) * min(1.0, affinity / settings.affinity_saturation)


def personal_signal(candidate: Candidate, behaviour: UserBehaviour, settings: BoostSettings) -> tuple[float, str]:
    """(factor, the behaviour it comes from: "recent_click", "category_affinity" or "" for none)."""
    # A recent click already says more than the category: the two never multiply.
    if candidate.article_id in behaviour.recent_clicks:
        return settings.recent_click_boost, "recent_click"
    if not candidate.category:
        return 1.0, ""
    factor = category_factor(behaviour.category_affinities.get(candidate.category, 0.0), settings)
    return factor, "category_affinity" if factor > 1.0 else ""


def popularity(
    candidates: Sequence[Candidate], signals: Mapping[str, Popularity], settings: BoostSettings
) -> list[tuple[float, Trending | None]]:
    """Each candidate's popularity factor, normalised over the candidate set, and the window that added
    most to it (None: no window added anything)."""
    empty = Popularity()
    found = [signals.get(c.article_id, empty) for c in candidates]
    factors = [1.0] * len(candidates)
    trending: list[Trending | None] = [None] * len(candidates)
    windows = (
        ("1h", settings.popularity_weight_1h, [max(0.0, p.p1h) for p in found]),
        ("24h", settings.popularity_weight_24h, [max(0.0, p.p24h) for p in found]),
        ("7d", settings.popularity_weight_7d, [max(0.0, p.p7d) for p in found]),
    )
    for window, weight, counts in windows:
        top = max(counts, default=0.0)
        if weight == 0 or top == 0:
            continue
        # The ratio first: weight / log1p(top) would overflow for a subnormal top.
        log_top = math.log1p(top)
        for i, count in enumerate(counts):
            term = weight * (math.log1p(count) / log_top)
            factors[i] += term
            best = trending[i]
            if term > 0 and (best is None or term > best.term):
                trending[i] = Trending(window, count, term)
    return list(zip(factors, trending, strict=True))


def boosted_score(score: float, boost: float) -> float:
    """The relevance score raised by a boost >= 1.

    Non-negative scores are multiplied. A negative score (a reranker's logit) is divided
    instead, which moves it towards 0: multiplying would push a boosted result below an
    unboosted one. Both branches meet at 0, so the result rises with the score (equal
    boosts keep the relevance order) and with the boost, and is never below the score.
    """
    return score * boost if score >= 0 else score / boost


def rank(
    candidates: Sequence[Candidate],
    behaviour: UserBehaviour | None,
    signals: Mapping[str, Popularity],
    k: int,
    settings: BoostSettings,
) -> list[Ranked]:
    """Candidates by final score, best first; ties keep the input order. k <= 0: all of them.

    `behaviour` None means an anonymous request. A user without behaviour data (no
    clicks, no affinity) is ranked as an anonymous one: unpersonalised, factor 1.
    """
    if (
        behaviour is not None
        and not behaviour.recent_clicks
        and not any(score > 0 for score in behaviour.category_affinities.values())
    ):
        behaviour = None
    if behaviour is None and not settings.popularity_for_anonymous:
        factors: list[tuple[float, Trending | None]] = [(1.0, None)] * len(candidates)
    else:
        factors = popularity(candidates, signals, settings)
    ranked = []
    for candidate, (pop, trending) in zip(candidates, factors, strict=True):
        personal, signal = (1.0, "") if behaviour is None else personal_signal(candidate, behaviour, settings)
        boost = min(personal * pop, settings.max_boost)
        final = boosted_score(candidate.score, boost)
        ranked.append(
            Ranked(candidate.article_id, final, final - candidate.score, boost, personal, signal, pop, trending)
        )
    # sorted() is stable: equal final scores stay in the input (retrieval/rerank) order.
    ranked.sort(key=lambda item: item.score, reverse=True)
    return ranked[:k] if k > 0 else ranked
