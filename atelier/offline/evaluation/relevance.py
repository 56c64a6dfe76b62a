"""Relevance of held-out attribute queries, stage by stage, through the running stack.

One anonymous search per query gives two stages at once: asked for every candidate
(ALL_CANDIDATES), the answer's order is ANN + rerank, and the same articles sorted by retrieval
score are plain ANN's; both are measured on their top 50.
Anonymous answers are never personalised, so the third stage equals the second; the
evaluation checks that rather than assuming it. With `hybrid`, each query is also asked of
SearchHybrid without a photo (stage HYBRID), to compare with SearchText's answer (RERANK).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import partial

from atelier.offline.evaluation.client import ALL_CANDIDATES, StackClient, undegraded
from atelier.offline.evaluation.queries import AttributeQuery
from atelier.offline.evaluation.rerank_depth import DepthCurve
from atelier.offline.evaluation.stages import ANN, HYBRID, PERSONALISED, RERANK, StageLatencies, StageTable, score

K = 50


ALL, CATALOGUE_WORDS, SHOPPER_WORDS = "all", "catalogue words", "shopper words"


def evaluate_queries(
    client: StackClient,
    queries: Iterable[tuple[AttributeQuery, Mapping[str, int]]],
    relevant_from: int | None = None,
    hybrid: bool = False,
    depths: DepthCurve | None = None,
    latencies: StageLatencies | None = None,
) -> tuple[dict[str, StageTable], dict[str, int]]:
    """Per-stage metrics over all queries and per wording, and counts of reranked and degraded answers.

    An article counts as relevant at grade `relevant_from`, by default the query's full match.
    `hybrid` adds the HYBRID stage (SearchHybrid with the query text only; the stack needs vision).
    `depths`, when given, collects NDCG@10 at every rerank depth of the full-depth answers; `latencies` each
    answer's stage timings.
    """
    tables = {ALL: StageTable(), CATALOGUE_WORDS: StageTable(), SHOPPER_WORDS: StageTable()}
    counts = {"queries": 0, "reranked": 0, "degraded": 0} | ({"hybrid_degraded": 0} if hybrid else {})
    for query, grades in queries:
        every = undegraded(partial(client.search, query.text, ALL_CANDIDATES))
        answer = every.top(K)
        if depths is not None and every.reranked and not every.degradations:
            depths.add(every, grades)
        counts["queries"] += 1
        if latencies is not None:
            latencies.add(answer.timings)
        counts["reranked"] += answer.reranked
        counts["degraded"] += bool(answer.degradations)
        threshold = relevant_from or query.max_grade
        retrieval, final = score(answer.retrieval, grades, threshold), score(answer.final, grades, threshold)
        merged = None
        if hybrid:
            hybrid_answer = undegraded(partial(client.search_hybrid, query.text, K))
            counts["hybrid_degraded"] += bool(hybrid_answer.degradations)
            merged = score(hybrid_answer.final, grades, threshold)
        for table in (tables[ALL], tables[SHOPPER_WORDS if query.wording else CATALOGUE_WORDS]):
            table.add(ANN, retrieval)
            table.add(RERANK, final)
            table.add(PERSONALISED, final)
            if merged is not None:
                table.add(HYBRID, merged)
    return tables, counts
