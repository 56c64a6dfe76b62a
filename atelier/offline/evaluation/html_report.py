"""The evaluation report as one HTML page with plots, viewable offline: no script, no stylesheet or font
fetched, every chart an inline SVG drawn from the report's JSON.

Charts: the stages' NDCG@10, recall and MRR; NDCG@10 per query group (the catalogue's words or
shoppers'); each simulated user's NDCG@10 personalised minus anonymous; image -> image precision per
garment class against chance; each stage's latency (p50, p95) over the relevance queries; then the
explanations' figures.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

from atelier.offline.evaluation.stages import METRICS

PALETTE = ("#4C78A8", "#F58518", "#54A24B", "#B279A2", "#E45756", "#72B7B2")
ROW = 18  # px per bar
LABEL_W, BAR_W, VALUE_W = 230, 360, 80


def _text(x: float, y: float, words: str, anchor: str = "start", weight: str = "normal") -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="12" font-weight="{weight}">'
        f"{html.escape(words)}</text>"
    )


def bar_chart(
    title: str,
    groups: Sequence[str],
    series: Sequence[str],
    value: Mapping[tuple[str, str], float],
    shown: str = "{:.3f}",
    signed: bool = False,
) -> str:
    """Horizontal bars, one per (group, series) that has a value, grouped; a legend when there are several
    series. `signed`: bars grow both ways from a middle zero (green up, red down)."""
    rows = [(group, name) for group in groups for name in series if (group, name) in value]
    if not rows:
        return ""
    top = max(abs(value[row]) for row in rows) or 1.0
    legend = 20 if len(series) > 1 else 0
    height = 30 + legend + len(rows) * ROW + len(groups) * 8
    parts = [_text(0, 16, title, weight="bold")]
    for i, name in enumerate(series if len(series) > 1 else ()):
        x = LABEL_W + i * 150
        parts.append(f'<rect x="{x}" y="26" width="10" height="10" fill="{PALETTE[i % len(PALETTE)]}"/>')
        parts.append(_text(x + 14, 35, name))
    y = 30 + legend
    last_group = None
    for group, name in rows:
        if group != last_group:
            y += 8
            last_group = group
            parts.append(_text(LABEL_W - 8, y + 13, group, anchor="end"))
        amount = value[(group, name)]
        width = abs(amount) / top * (BAR_W / 2 if signed else BAR_W)
        x = LABEL_W + (BAR_W / 2 - (width if amount < 0 else 0) if signed else 0)
        colour = ("#54A24B" if amount >= 0 else "#E45756") if signed else PALETTE[series.index(name) % len(PALETTE)]
        parts.append(
            f'<rect x="{x:.1f}" y="{y + 2}" width="{max(width, 0.5):.1f}" height="{ROW - 4}" fill="{colour}"/>'
        )
        parts.append(_text(LABEL_W + BAR_W + 6, y + 13, shown.format(amount)))
        y += ROW
    if signed:
        parts.append(
            f'<line x1="{LABEL_W + BAR_W / 2}" y1="{30 + legend}" x2="{LABEL_W + BAR_W / 2}" y2="{y}" stroke="#888"/>'
        )
    width = LABEL_W + BAR_W + VALUE_W
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{html.escape(title)}" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">{"".join(parts)}</svg>'
    )


def _stages_chart(means: Mapping[str, Mapping[str, float]], title: str) -> str:
    stages = list(means)
    return bar_chart(title, METRICS, stages, {(m, s): means[s][m] for s in stages for m in METRICS})


def _wording_chart(by_wording: Mapping[str, Mapping[str, Mapping[str, float]]]) -> str:
    groups = list(by_wording)
    stages = list(dict.fromkeys(stage for means in by_wording.values() for stage in means))
    values = {(g, s): by_wording[g][s]["ndcg@10"] for g in groups for s in stages if s in by_wording[g]}
    return bar_chart("NDCG@10 per query group", groups, stages, values)


def _users_chart(per_user: Sequence[Mapping[str, Any]]) -> str:
    if not per_user:
        return ""
    stages = [key for key in per_user[0] if key != "user"]
    if len(stages) != 2:
        return ""
    anonymous, personal = stages
    lifts = sorted(((u["user"], u[personal] - u[anonymous]) for u in per_user), key=lambda pair: -pair[1])
    values = {(user, "lift"): lift for user, lift in lifts}
    title = f"Simulated users: NDCG@10 {personal} minus {anonymous}, per user"
    return bar_chart(title, [user for user, _ in lifts], ["lift"], values, shown="{:+.3f}", signed=True)


def _vision_chart(vision: Mapping[str, Any] | None) -> str:
    if not vision or not vision.get("enabled"):
        return ""
    image = vision["image_to_image"]
    classes = list(image["by_class"])
    values = {(c, "precision"): image["by_class"][c]["precision"] for c in classes}
    values |= {(c, "chance"): image["by_class"][c]["chance"] for c in classes}
    return bar_chart(
        f"Image -> image precision@{image['k']} per garment class", classes, ["precision", "chance"], values
    )


def _latency_chart(latency: Mapping[str, Mapping[str, float]] | None) -> str:
    if not latency:
        return ""
    stages = list(latency)
    values = {(s, q): latency[s][q] for s in stages for q in ("p50", "p95")}
    counts = max(each["n"] for each in latency.values())
    return bar_chart(f"Latency by stage, ms ({counts} answers)", stages, ["p50", "p95"], values, shown="{:.1f}")


def _facts(report: Mapping[str, Any]) -> list[str]:
    facts = [
        f"{report['created']} on {html.escape(str(report['machine']))}",
        f"catalogue {html.escape(str(report['catalogue']))} ({report['articles']} articles), seed {report['seed']}",
    ]
    users = report["personalisation"]
    facts.append(
        f"simulated users: {users['users']} with history, {users['cold_users']} without "
        f"({users['cold_unchanged']} of them answered as anonymous)"
    )
    explained = report.get("explanations")
    if explained and explained.get("generated"):
        facts.append(
            f"explanations: {explained['pass_share']:.1%} of generated sentences passed the check, "
            f"{explained['mention_share']:.1%} of those shown give the reason that moved the article; explain "
            f"stage p50 {explained['explain_ms']['p50']:.0f} ms, p99 {explained['explain_ms']['p99']:.0f} ms"
        )
    vision = report.get("vision")
    if vision and not vision.get("enabled"):
        facts.append(f"vision off: {html.escape(vision['reason'])}")
    return facts


def render(report: Mapping[str, Any]) -> str:
    """The whole page."""
    relevance = report["relevance"]
    purchases = report.get("purchases")
    charts = [
        _stages_chart(relevance["means"], f"Held-out attribute queries ({relevance['counts']['queries']}) by stage"),
        _wording_chart(relevance.get("by_wording", {})),
        _stages_chart(purchases["means"], "Purchase queries by stage") if purchases else "",
        _stages_chart(report["personalisation"]["means"], "Simulated users by stage"),
        _users_chart(report["personalisation"].get("per_user", [])),
        _vision_chart(report.get("vision")),
        _latency_chart(report.get("latency_by_stage")),
    ]
    figures = "".join(f"<figure>{chart}</figure>" for chart in charts if chart)
    facts = "".join(f"<li>{fact}</li>" for fact in _facts(report))
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Atelier offline evaluation</title>'
        "<style>body{font-family:sans-serif;margin:2em;color:#222}figure{margin:1.5em 0}"
        "p.notes{max-width:60em;color:#555}</style></head><body>"
        f"<h1>Offline evaluation</h1><ul>{facts}</ul>{figures}"
        f'<p class="notes">{html.escape(report["notes"])}</p></body></html>\n'
    )
