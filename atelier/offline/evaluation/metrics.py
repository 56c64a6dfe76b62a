"""Ranking metrics over graded relevance (grade 0 = not relevant).

`relevant` counts an item as relevant at or above `min_grade`; NDCG uses gains 2**grade - 1
against the ideal order of every graded item, so it rewards placing the best matches first.
Recall@k is capped: hits / min(k, relevant items), so a query with hundreds of matches can
still reach 1.0 at k=10.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence


def dcg(gains: Sequence[float]) -> float:
    return sum(gain / math.log2(position + 2) for position, gain in enumerate(gains))


def ndcg_at_k(ranked: Sequence[str], grades: Mapping[str, int], k: int) -> float:
    ideal = dcg(sorted((2.0**g - 1 for g in grades.values() if g > 0), reverse=True)[:k])
    if ideal == 0:
        return 0.0
    return dcg([2.0 ** grades.get(item, 0) - 1 for item in ranked[:k]]) / ideal


def recall_at_k(ranked: Sequence[str], relevant: set[str], k: int) -> float:
    if not relevant:
        return 0.0
    return len(relevant.intersection(ranked[:k])) / min(k, len(relevant))


def reciprocal_rank(ranked: Sequence[str], relevant: set[str]) -> float:
    for position, item in enumerate(ranked, start=1):
        if item in relevant:
            return 1.0 / position
    return 0.0
