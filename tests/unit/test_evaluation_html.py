"""The evaluation's HTML report: one self-contained page, a chart per figure the report has."""

from __future__ import annotations

import re
from typing import Any

from atelier.offline.evaluation import html_report
from atelier.offline.evaluation.stages import ANN, PERSONALISED, RERANK, StageLatencies, percentile

MEANS = {stage: {"ndcg@10": v, "recall@10": v, "recall@50": v, "mrr": v} for stage, v in ((ANN, 0.4), (RERANK, 0.5))}


def _report(**more: Any) -> dict[str, Any]:
    return {
        "created": "2026-12-04T21:47:00Z",
        "machine": "Intel Xeon <2 cores>",
        "catalogue": "data/synthetic",
        "articles": 3000,
        "seed": 5,
        "relevance": {"means": MEANS, "by_wording": {"shopper words": MEANS}, "counts": {"queries": 200}},
        "purchases": None,
        "personalisation": {
            "means": MEANS,
            "users": 2,
            "cold_users": 1,
            "cold_unchanged": 1,
            "per_user": [
                {"user": "u1", RERANK: 0.5, PERSONALISED: 0.75},
                {"user": "u2", RERANK: 0.6, PERSONALISED: 0.4},
            ],
        },
        "vision": {"enabled": False, "reason": "no CLIP model served yet"},
        "latency_by_stage": {
            "embed": {"n": 200, "p50": 9.5, "p95": 20.0},
            "rerank": {"n": 200, "p50": 180, "p95": 250},
        },
        "notes": "Stages: ...",
        **more,
    }


def test_the_page_draws_each_figure_and_fetches_nothing() -> None:
    page = html_report.render(_report())
    titles = re.findall(r'<svg[^>]*aria-label="([^"]+)"', page)
    assert titles == [
        "Held-out attribute queries (200) by stage",
        "NDCG@10 per query group",
        "Simulated users by stage",
        "Simulated users: NDCG@10 ann+rerank+personalisation minus ann+rerank, per user",
        "Latency by stage, ms (200 answers)",
    ]
    assert not re.search(r'(src|href)="', page), "nothing fetched: no script, stylesheet, image or font"
    assert "Intel Xeon &lt;2 cores&gt;" in page and "vision off: no CLIP model served yet" in page
    # The user whose answer got worse is a red bar to the left of zero, with its signed value.
    assert "+0.250" in page and "-0.200" in page and 'fill="#E45756"' in page


def test_vision_on_adds_precision_per_class_against_chance() -> None:
    vision = {
        "enabled": True,
        "image_to_image": {"k": 10, "by_class": {"Trousers": {"precision": 0.8, "chance": 0.1, "queries": 20}}},
    }
    page = html_report.render(_report(vision=vision))
    assert 'aria-label="Image -&gt; image precision@10 per garment class"' in page


def test_stage_latencies_summarise_the_answers_timings() -> None:
    latencies = StageLatencies()
    for ms in (10.0, 20.0, 30.0, 40.0):
        latencies.add({"embed": ms, "ann": ms / 10})
    assert latencies.summary()["embed"] == {"n": 4, "p50": 30.0, "p95": 40.0}
    assert percentile([], 0.5) is None
