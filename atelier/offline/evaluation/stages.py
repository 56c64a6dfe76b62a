"""Metrics of each ranking stage, averaged over queries."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from atelier.offline.evaluation.metrics import ndcg_at_k, recall_at_k, reciprocal_rank

ANN = "ann"
RERANK = "ann+rerank"
PERSONALISED = "ann+rerank+personalisation"
HYBRID = "hybrid"  # SearchHybrid's answer to the query text alone (no photo)
METRICS = ("ndcg@10", "recall@10", "recall@50", "mrr")


def score(ranked: Sequence[str], grades: Mapping[str, int], relevant_from: int) -> dict[str, float]:
    """The metrics of one ranking; `relevant_from` is the grade at which an item counts as relevant."""
    relevant = {item for item, grade in grades.items() if grade >= relevant_from}
    return {
        "ndcg@10": ndcg_at_k(ranked, grades, 10),
        "recall@10": recall_at_k(ranked, relevant, 10),
        "recall@50": recall_at_k(ranked, relevant, 50),
        "mrr": reciprocal_rank(ranked, relevant),
    }


@dataclass
class StageTable:
    """Per stage, the sum of each metric over the queries seen so far."""

    sums: dict[str, dict[str, float]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, stage: str, metrics: Mapping[str, float]) -> None:
        totals = self.sums.setdefault(stage, dict.fromkeys(METRICS, 0.0))
        for name in METRICS:
            totals[name] += metrics[name]
        self.counts[stage] = self.counts.get(stage, 0) + 1

    def means(self) -> dict[str, dict[str, float]]:
        return {
            stage: {name: total / self.counts[stage] for name, total in totals.items()}
            for stage, totals in self.sums.items()
        }


def lift(means: Mapping[str, Mapping[str, float]], base: str, stage: str, metric: str = "ndcg@10") -> float | None:
    """Relative change of `metric` from `base` to `stage` (0.1 = +10 %), None when undefined."""
    if base not in means or stage not in means or means[base][metric] == 0:
        return None
    return means[stage][metric] / means[base][metric] - 1


@dataclass
class StageLatencies:
    """Milliseconds each stage took, over the answers seen so far (the answers' own timings)."""

    millis: dict[str, list[float]] = field(default_factory=dict)

    def add(self, timings: Mapping[str, float]) -> None:
        for stage, ms in timings.items():
            self.millis.setdefault(stage, []).append(ms)

    def summary(self) -> dict[str, dict[str, float]]:
        """Per stage: answers, p50 and p95 in milliseconds."""
        return {
            stage: {"n": len(values), "p50": percentile(values, 0.5), "p95": percentile(values, 0.95)}
            for stage, values in self.millis.items()
        }


def percentile(values: Sequence[float], share: float) -> float | None:
    """The value below which `share` of `values` lie (nearest rank); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]
