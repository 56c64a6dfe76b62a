"""What a shallower rerank costs: NDCG@10 of the held-out queries at every rerank depth, and at the
depth distribution a load run saw (`benchmarks.mixed_load --out`).

A search under load reranks only its top `depth` ANN candidates (services/search/rerank.py): those in
cross-encoder order, then the others in retrieval order. An answer asked for every candidate at full
depth carries each candidate's rerank score and retrieval order, so the answer at any shallower depth
follows from it exactly, with no search at that depth.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from atelier.offline.evaluation.client import Ranked
from atelier.offline.evaluation.metrics import ndcg_at_k

SHOWN = (0, 10, 20, 40, 60, 80, 100)


def at_depth(answer: Ranked, depth: int) -> list[str]:
    """The articles of a full-depth answer (asked for every candidate) as a rerank of only its top
    `depth` ANN candidates orders them."""
    rerank_score = dict(zip(answer.final, answer.scores, strict=True))
    head = sorted(answer.retrieval[:depth], key=lambda article: -rerank_score[article])  # stable, as merge
    return head + answer.retrieval[depth:]


@dataclass
class DepthCurve:
    """NDCG@10 per rerank depth (0: ANN order), over the queries seen."""

    full_depth: int = 100
    ndcg: dict[int, list[float]] = field(default_factory=dict)

    def add(self, answer: Ranked, grades: Mapping[str, int]) -> None:
        for depth in range(self.full_depth + 1):
            self.ndcg.setdefault(depth, []).append(ndcg_at_k(at_depth(answer, depth), grades, 10))

    def means(self) -> dict[int, float]:
        return {depth: statistics.fmean(values) for depth, values in self.ndcg.items()}


def load_mix(path: Path) -> dict[int, int]:
    """A load run's rerank depths (depth -> searches), from `benchmarks.mixed_load --out`."""
    return {int(depth): int(n) for depth, n in json.loads(path.read_text())["rerank_depths"].items()}


def expected(means: Mapping[int, float], mix: Mapping[int, int]) -> float:
    """Mean NDCG@10 of the queries had their depths been distributed as `mix` (depths beyond the curve
    count as its deepest)."""
    deepest = max(means)
    total = sum(mix.values())
    return sum(means[min(depth, deepest)] * n for depth, n in mix.items()) / total


def section(result: Mapping[str, Any]) -> list[str]:
    """The report's lines for `result` (as `summary` gives it)."""
    means = {int(depth): value for depth, value in result["means"].items()}
    full = means[max(means)]
    lines = [
        "## Rerank depth (NDCG@10 of the held-out queries by how many candidates were reranked)",
        "",
        "| depth | " + " | ".join(str(depth) for depth in SHOWN if depth in means) + " |",
        "|---" * (1 + sum(depth in means for depth in SHOWN)) + "|",
        "| NDCG@10 | " + " | ".join(f"{means[depth]:.4f}" for depth in SHOWN if depth in means) + " |",
        "",
    ]
    for label, mix in result.get("mixes", {}).items():
        lines.append(
            f"- at the depths of {label} ({mix['searches']} searches, mean depth {mix['mean_depth']:.1f}): "
            f"NDCG@10 {mix['ndcg@10']:.4f}, {mix['ndcg@10'] - full:+.4f} against full depth"
        )
    return [*lines, ""] if result.get("mixes") else lines


def summary(curve: DepthCurve, mixes: Mapping[str, Mapping[int, int]]) -> dict[str, Any]:
    """The report's JSON of the curve and of each load run's depth distribution."""
    means = curve.means()
    return {
        "means": {str(depth): value for depth, value in means.items()},
        "mixes": {
            label: {
                "searches": sum(mix.values()),
                "mean_depth": sum(depth * n for depth, n in mix.items()) / max(sum(mix.values()), 1),
                "ndcg@10": expected(means, mix),
            }
            for label, mix in mixes.items()
        },
    }
