"""The eval's explanations section: a fixed set of searches asking for the top results' explanations (held-out
queries, anonymous, and the simulated users' own queries, after their clicks), through the running stack.

With SEARCH_EXPLAIN_MODE=llm it counts the generated sentences that passed the grounding check (shown to the
shopper) against those that failed it (the answer's EXPLANATION_UNGROUNDED degradations, one per sentence),
the share of the shown ones that give the reason of the signal that moved the article (its explanation's
first signal: the ranker's strongest, else the query's), and the latency of the explain stage (the answer's
own timing) and of the whole search, p50 and p99 on this machine. In template mode it says so.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterable, Mapping
from typing import Any

from atelier.offline.evaluation.client import StackClient
from atelier.offline.evaluation.stages import percentile
from atelier.serving.shopper_words import SHOPPER_WORDS
from fashion.v1 import degradation_pb2, explanation_pb2, search_service_pb2
from services.search.grounding import mentions

K = 10
EXPLAIN_TOP = 3
Reason = degradation_pb2.DegradationReason


def signal_words(signal: explanation_pb2.ExplanationSignal) -> list[str]:
    """What a sentence may say for a query attribute's value: the value, its last word, shoppers' words."""
    value = signal.value.lower()
    words = [value, value.split()[-1]] if value else []
    return [*words, *(word for each in words for word in SHOPPER_WORDS.get(each, ()))]


def evaluate(client: StackClient, searches: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """`searches`: (query, user id or "") pairs."""
    shown = ungrounded = mentioned = template_only = not_generated = answers = 0
    explain_ms: list[float] = []
    search_ms: list[float] = []
    examples: list[str] = []
    refused: list[str] = []
    for query, user_id in searches:
        started = time.perf_counter()
        reply: search_service_pb2.SearchTextResponse = client.explained(query, K, EXPLAIN_TOP, user_id)
        search_ms.append((time.perf_counter() - started) * 1000)
        answers += 1
        explain_ms += [timing.millis for timing in reply.timings if timing.stage == "explain"]
        explainer = [d for d in reply.degradations if d.component == "explainer"]
        failed = [d for d in explainer if d.reason == Reason.DEGRADATION_REASON_EXPLANATION_UNGROUNDED]
        ungrounded += len(failed)
        refused += [f"{query!r}: {d.detail}" for d in failed]
        not_generated += len(failed) < len(explainer)
        for result in reply.results[:EXPLAIN_TOP]:
            explanation = result.explanation
            if explanation.source != explanation_pb2.EXPLANATION_SOURCE_GENERATED:
                template_only += 1
                continue
            shown += 1
            top = explanation.signals[0] if explanation.signals else None
            said = top is not None and mentions(explanation.text, top.kind, signal_words(top))
            mentioned += said
            if len(examples) < 5:
                examples.append(f"{query!r}{' (user)' if user_id else ''}: {explanation.text}")
    generated = shown + ungrounded
    return {
        "answers": answers,
        "explained": answers * EXPLAIN_TOP,
        "generated": generated,
        "passed": shown,
        "ungrounded": ungrounded,
        "pass_share": shown / generated if generated else None,
        "signal_mentioned": mentioned,
        "mention_share": mentioned / shown if shown else None,
        "answers_not_generated": not_generated,
        "template_only": template_only,
        "explain_ms": {"p50": percentile(explain_ms, 0.5), "p99": percentile(explain_ms, 0.99), "n": len(explain_ms)},
        "search_ms": {"p50": percentile(search_ms, 0.5), "p99": percentile(search_ms, 0.99), "n": len(search_ms)},
        "mean_explain_ms": statistics.fmean(explain_ms) if explain_ms else None,
        "examples": examples,
        "refused": refused,
    }


def _ms(figures: Mapping[str, Any]) -> str:
    if figures["p50"] is None:
        return "-"
    return f"p50 {figures['p50']:.0f} ms, p99 {figures['p99']:.0f} ms ({figures['n']} answers)"


def section(result: Mapping[str, Any] | None) -> list[str]:
    if result is None:
        return []
    lines = [f"## Explanations ({result['answers']} searches, top {EXPLAIN_TOP} explained)", ""]
    if not result["generated"]:
        why = (
            f"{result['answers_not_generated']} answers say why"
            if result["answers_not_generated"]
            else "template mode (SEARCH_EXPLAIN_MODE=llm generates them)"
        )
        return [*lines, f"no generated explanations: {why}.", f"- explain stage: {_ms(result['explain_ms'])}", ""]
    return [
        *lines,
        f"- generated sentences passing the grounding check: **{result['pass_share']:.1%}** "
        f"({result['passed']} of {result['generated']}; {result['ungrounded']} refused, answered by the template)",
        f"- shown sentences giving the reason of the signal that moved the article: **{result['mention_share']:.1%}** "
        f"({result['signal_mentioned']} of {result['passed']})",
        f"- answers not generated (busy, over budget, not ready): {result['answers_not_generated']}",
        f"- explain stage: {_ms(result['explain_ms'])}; whole search: {_ms(result['search_ms'])}",
        *(f"- e.g. {example}" for example in result["examples"][:3]),
        *(f"- refused: {each}" for each in result.get("refused", [])[:3]),
        "",
    ]
