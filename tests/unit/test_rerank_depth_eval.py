"""What a shallower rerank costs, from one full-depth answer: the order at each depth, the curve, a mix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from atelier.offline.evaluation.client import Ranked
from atelier.offline.evaluation.rerank_depth import DepthCurve, at_depth, expected, load_mix, section, summary

# Retrieval order a, b, c, d; the cross-encoder puts d first, then c, b, a.
ANSWER = Ranked(
    final=["d", "c", "b", "a"],
    retrieval=["a", "b", "c", "d"],
    reranked=True,
    personalised=False,
    scores=[0.9, 0.8, 0.5, 0.1],
    degradations=[],
)


def test_a_shallower_rerank_reorders_only_the_top_candidates_and_keeps_the_rest_in_retrieval_order() -> None:
    assert at_depth(ANSWER, 0) == ["a", "b", "c", "d"]
    assert at_depth(ANSWER, 2) == ["b", "a", "c", "d"]
    assert at_depth(ANSWER, 3) == ["c", "b", "a", "d"]
    assert at_depth(ANSWER, 4) == ANSWER.final


def test_the_curve_and_the_ndcg_of_a_load_runs_depths(tmp_path: Path) -> None:
    curve = DepthCurve(full_depth=4)
    curve.add(ANSWER, {"d": 2, "c": 1})
    means = curve.means()
    assert means[4] == pytest.approx(1.0) and means[0] < means[3] < means[4]
    run = tmp_path / "load.json"
    run.write_text(json.dumps({"rerank_depths": {"0": 1, "4": 3}}))
    mix = load_mix(run)
    assert mix == {0: 1, 4: 3}
    assert expected(means, mix) == pytest.approx((means[0] + 3 * means[4]) / 4)
    result = summary(curve, {"8/s": mix})
    assert result["mixes"]["8/s"]["mean_depth"] == 3.0
    lines = "\n".join(section(json.loads(json.dumps(result))))
    assert "at the depths of 8/s (4 searches, mean depth 3.0)" in lines
