"""`atelier eval` against the test stack: a small run of every section, report written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from atelier.cli import build_parser
from atelier.offline.catalog.hm_loader import HMDataset
from atelier.stack.launcher import Stack
from tests.integration.conftest import RERANKING


def test_eval_writes_a_report_with_every_stage(
    catalog: int, stack: Stack, catalog_dataset: HMDataset, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = build_parser().parse_args(
        [
            "eval",
            "--source",
            str(catalog_dataset.articles.parent),
            "--queries",
            "20",
            "--users",
            "10",
            "--cold-users",
            "3",
            "--photos-per-class",
            "2",
            "--out",
            str(tmp_path),
        ]
    )
    assert args.run(args) == 0
    (report_file,) = tmp_path.glob("eval-*.json")
    report = json.loads(report_file.read_text())
    relevance, users = report["relevance"], report["personalisation"]
    assert relevance["counts"]["queries"] == 20
    assert relevance["counts"]["reranked"] == (20 if RERANKING else 0)
    # The test stack runs with vision (a session-trained CLIP): hybrid search is a stage too.
    assert set(relevance["means"]) == {"ann", "ann+rerank", "ann+rerank+personalisation", "hybrid"}
    assert relevance["means"]["ann+rerank+personalisation"] == relevance["means"]["ann+rerank"]
    assert users["users"] == 10
    # clicks went through the real path; boosting by them must not make these users' answers worse
    assert users["means"]["ann+rerank+personalisation"]["ndcg@10"] >= users["means"]["ann+rerank"]["ndcg@10"]
    assert users["cold_unchanged"] == users["cold_users"] == 3
    vision = report["vision"]
    assert vision["enabled"] and vision["catalogue_photos"] > 0
    assert set(vision["image_to_image"]) and set(vision["text_to_image"])
    printed = capsys.readouterr().out
    assert "| ann+rerank |" in printed and "Image -> image" in printed
