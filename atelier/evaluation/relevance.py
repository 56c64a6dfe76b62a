"""Relevance of held-out attribute queries, stage by stage, through the running stack.

One anonymous search per query (k=50) gives two stages at once: the answer's order is
ANN + rerank, and the same articles sorted by retrieval score are plain ANN's top 50.
Anonymous answers are never personalised, so the third stage equals the second; the
evaluation checks that rather than assuming it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from atelier.evaluation.client import StackClient
from atelier.evaluation.queries import AttributeQuery
from atelier.evaluation.stages import ANN, PERSONALISED, RERANK, StageTable, score

K = 50


ALL, CATALOGUE_WORDS, SHOPPER_WORDS = "all", "catalogue words", "shopper words"


def evaluate_queries(
    client: StackClient,
    queries: Iterable[tuple[AttributeQuery, Mapping[str, int]]],
    relevant_from: int | None = None,
) -> tuple[dict[str, StageTable], dict[str, int]]:
    """Per-stage metrics over all queries and per wording, and counts of reranked and degraded answers.

    An article counts as relevant at grade `relevant_from`, by default the query's full match.
    """
    tables = {ALL: StageTable(), CATALOGUE_WORDS: StageTable(), SHOPPER_WORDS: StageTable()}
    counts = {"queries": 0, "reranked": 0, "degraded": 0}
    for query, grades in queries:
        answer = client.search(query.text, K)
        counts["queries"] += 1
        counts["reranked"] += answer.reranked
        counts["degraded"] += bool(answer.degradations)
        threshold = relevant_from or query.max_grade
        retrieval, final = score(answer.retrieval, grades, threshold), score(answer.final, grades, threshold)
        for table in (tables[ALL], tables[SHOPPER_WORDS if query.wording else CATALOGUE_WORDS]):
            table.add(ANN, retrieval)
            table.add(RERANK, final)
            table.add(PERSONALISED, final)
    return tables, counts
