"""The evaluation report: a table per section, lifts against targets, JSON and Markdown files."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from atelier.offline.evaluation import explanations, html_report, rerank_depth
from atelier.offline.evaluation.stages import ANN, HYBRID, METRICS, PERSONALISED, RERANK, lift

TARGET_LIFT = 0.10


def table(means: Mapping[str, Mapping[str, float]]) -> list[str]:
    lines = ["| stage | " + " | ".join(METRICS) + " |", "|---" * (len(METRICS) + 1) + "|"]
    for stage in (ANN, RERANK, PERSONALISED, HYBRID):
        if stage in means:
            lines.append(f"| {stage} | " + " | ".join(f"{means[stage][m]:.4f}" for m in METRICS) + " |")
    return lines


def lift_line(name: str, value: float | None, target: float | None = TARGET_LIFT) -> str:
    if value is None:
        return f"- {name}: n/a"
    if target is None:
        return f"- {name}: {value * 100:+.1f} %"
    verdict = "meets" if value >= target else "misses"
    return f"- {name}: {value * 100:+.1f} % ({verdict} the {target * 100:.0f} % target)"


def _purchase_section(purchases: Mapping[str, Any] | None) -> list[str]:
    if not purchases:
        return []
    return [
        f"## Purchase queries ({purchases['counts']['queries']}: a customer's last-week purchases as ground truth)",
        "",
        *table(purchases["means"]),
        "",
        lift_line("rerank vs ANN, NDCG@10", lift(purchases["means"], ANN, RERANK), target=None),
        "",
    ]


def _relevance_heading(counts: Mapping[str, int]) -> str:
    hybrid = f", {counts['hybrid_degraded']} hybrid degraded" if "hybrid_degraded" in counts else ""
    return (
        f"## Held-out attribute queries ({counts['queries']}, {counts['reranked']} reranked, "
        f"{counts['degraded']} degraded{hybrid})"
    )


def _hybrid_lines(relevance: Mapping[str, Any]) -> list[str]:
    if HYBRID not in relevance["means"]:
        return []
    lines = [
        lift_line(
            "hybrid (no photo) vs text-only (ann+rerank), NDCG@10", lift(relevance["means"], RERANK, HYBRID), None
        )
    ]
    lines += [
        f"- {wording}: NDCG@10 text-only {means[RERANK]['ndcg@10']:.4f} -> hybrid {means[HYBRID]['ndcg@10']:.4f}"
        for wording, means in relevance.get("by_wording", {}).items()
        if HYBRID in means
    ]
    return lines


def _vision_section(vision: Mapping[str, Any] | None) -> list[str]:
    if vision is None:
        return []
    if not vision["enabled"]:
        return [
            "## Vision",
            "",
            f"vision off: {vision['reason']}; image, text-to-image and hybrid results skipped.",
            "",
        ]
    image, text = vision["image_to_image"], vision["text_to_image"]
    return [
        f"## Image -> image ({image['queries']} held-out photos, {image['degraded']} degraded; "
        f"{vision['catalogue_photos']} catalogue photos)",
        "",
        f"| garment class | queries | precision@{image['k']} | chance |",
        "|---|---|---|---|",
        *(
            f"| {name} | {row['queries']} | {row['precision']:.4f} | {row['chance']:.4f} |"
            for name, row in image["by_class"].items()
        ),
        f"| mean | {image['queries']} | **{image['precision']:.4f}** | {image['chance']:.4f} |",
        "",
        f"## Text -> image ({text['queries']} colour and garment queries, CLIP text tower on the image collection)",
        "",
        f"- precision@{text['k']}, class and colour family: **{text['precision']:.4f}**",
        f"- precision@{text['k']}, class only: {text['class_precision']:.4f}",
        "",
    ]


def render(report: Mapping[str, Any]) -> str:
    relevance, users = report["relevance"], report["personalisation"]
    lines = [
        "# Offline evaluation",
        "",
        f"{report['created']} on {report['machine']}; catalogue {report['catalogue']} "
        f"({report['articles']} articles), seed {report['seed']}, k = 50.",
        "",
        _relevance_heading(relevance["counts"]),
        "",
        *table(relevance["means"]),
        "",
        lift_line("rerank vs ANN, NDCG@10", lift(relevance["means"], ANN, RERANK)),
        *(
            f"- {wording}: NDCG@10 ANN {means[ANN]['ndcg@10']:.4f} -> rerank {means[RERANK]['ndcg@10']:.4f}"
            for wording, means in relevance.get("by_wording", {}).items()
            if ANN in means
        ),
        *_hybrid_lines(relevance),
        "",
        *(rerank_depth.section(report["rerank_depth"]) if report.get("rerank_depth") else []),
        *_purchase_section(report.get("purchases")),
        f"## Simulated users ({users['users']} with history, {users['cold_users']} without)",
        "",
        *table(users["means"]),
        "",
        lift_line("personalisation vs rerank, NDCG@10", lift(users["means"], RERANK, PERSONALISED)),
        f"- users without history: {users['cold_unchanged']}/{users['cold_users']} answers identical to anonymous",
        "",
        *_vision_section(report.get("vision")),
        *explanations.section(report.get("explanations")),
        report["notes"],
    ]
    return "\n".join(lines) + "\n"


def write(report: Mapping[str, Any], out_dir: Path) -> tuple[Path, Path, Path]:
    """The report as JSON, Markdown and HTML with plots (atelier/offline/evaluation/html_report.py)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = "eval-" + report["created"].replace(":", "").replace("-", "")
    json_path, md_path, html_path = (out_dir / f"{stem}.{suffix}" for suffix in ("json", "md", "html"))
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    md_path.write_text(render(report))
    html_path.write_text(html_report.render(report))
    return json_path, md_path, html_path
