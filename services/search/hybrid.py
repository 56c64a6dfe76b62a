"""Hybrid search's merge of several recall lists into one.

Scores of different models do not compare (a text model's cosine of 0.6 may be its best, a CLIP
model's 0.3 its best), so each list's scores are first min-max normalised to [0, 1] within the
list; an article's merged score is the weighted sum over the lists that found it, so an article
found by several lists (a duplicate) is merged into one, ahead of one found by a single list.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from atelier.serving.article_index import Hit


@dataclass(frozen=True)
class RecallList:
    hits: Sequence[Hit]
    weight: float


def normalised(hits: Sequence[Hit]) -> list[float]:
    """Each hit's score min-max scaled within its list: best 1.0, worst 0.0 (all 1.0 when they tie)."""
    if not hits:
        return []
    scores = [hit.score for hit in hits]
    low, high = min(scores), max(scores)
    if high - low <= 1e-9:
        return [1.0] * len(scores)
    return [(score - low) / (high - low) for score in scores]


def merge(lists: Mapping[str, RecallList], limit: int) -> list[Hit]:
    """The `limit` best articles over all lists by weighted normalised score; ties keep first-found order."""
    merged: dict[str, float] = {}
    fields: dict[str, dict[str, str]] = {}
    for recall in lists.values():
        for hit, score in zip(recall.hits, normalised(recall.hits), strict=True):
            merged[hit.article_id] = merged.get(hit.article_id, 0.0) + recall.weight * score
            fields.setdefault(hit.article_id, hit.fields)
    order = sorted(merged, key=lambda article_id: -merged[article_id])  # stable
    return [Hit(article_id, merged[article_id], fields[article_id]) for article_id in order[:limit]]
