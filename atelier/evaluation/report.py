"""The evaluation report: a table per section, lifts against targets, JSON and Markdown files."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from atelier.evaluation.stages import ANN, METRICS, PERSONALISED, RERANK, lift

TARGET_LIFT = 0.10


def table(means: Mapping[str, Mapping[str, float]]) -> list[str]:
    lines = ["| stage | " + " | ".join(METRICS) + " |", "|---" * (len(METRICS) + 1) + "|"]
    for stage in (ANN, RERANK, PERSONALISED):
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


def render(report: Mapping[str, Any]) -> str:
    relevance, users = report["relevance"], report["personalisation"]
    lines = [
        "# Offline evaluation",
        "",
        f"{report['created']} on {report['machine']}; catalogue {report['catalogue']} "
        f"({report['articles']} articles), seed {report['seed']}, k = 50.",
        "",
        f"## Held-out attribute queries ({relevance['counts']['queries']}, "
        f"{relevance['counts']['reranked']} reranked, {relevance['counts']['degraded']} degraded)",
        "",
        *table(relevance["means"]),
        "",
        lift_line("rerank vs ANN, NDCG@10", lift(relevance["means"], ANN, RERANK)),
        *(
            f"- {wording}: NDCG@10 ANN {means[ANN]['ndcg@10']:.4f} -> rerank {means[RERANK]['ndcg@10']:.4f}"
            for wording, means in relevance.get("by_wording", {}).items()
            if ANN in means
        ),
        "",
        *_purchase_section(report.get("purchases")),
        f"## Simulated users ({users['users']} with history, {users['cold_users']} without)",
        "",
        *table(users["means"]),
        "",
        lift_line("personalisation vs rerank, NDCG@10", lift(users["means"], RERANK, PERSONALISED)),
        f"- users without history: {users['cold_unchanged']}/{users['cold_users']} answers identical to anonymous",
        "",
        report["notes"],
    ]
    return "\n".join(lines) + "\n"


def write(report: Mapping[str, Any], out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = "eval-" + report["created"].replace(":", "").replace("-", "")
    json_path, md_path = out_dir / f"{stem}.json", out_dir / f"{stem}.md"
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    md_path.write_text(render(report))
    return json_path, md_path
