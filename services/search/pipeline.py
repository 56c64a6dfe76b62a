"""One search, top to bottom: recall -> rerank -> personalise, or popular items when recall fails.

Every kind of search runs here; what differs is its recall (services/search/recall.py) and the
text, if any, its candidates are reranked by.
"""

from __future__ import annotations

from dataclasses import dataclass

from atelier.serving.dependency import DependencyError, Failure
from services.search import timings
from services.search.answers import Answer, personalised_result, result_message, retrieval_order
from services.search.explanations import explain_top
from services.search.fallback import PopularFallback
from services.search.generated_explanations import GeneratedExplanations
from services.search.personalisation import Personaliser
from services.search.recall import Recall
from services.search.rerank import RerankStage
from services.search.timings import stage
from services.search.validation import SearchQuery


class NoAnswer(Exception):
    """Recall failed, and the popular items that would have answered instead are unavailable too."""

    def __init__(self, failed: DependencyError, fallback: DependencyError) -> None:
        super().__init__(f"{failed}; popular items unavailable too ({fallback})")
        self.failed = failed


@dataclass(frozen=True)
class SearchPipeline:
    personaliser: Personaliser
    fallback: PopularFallback
    # Candidates recalled per search (at least k), which later stages reorder.
    candidates: int
    rerank: RerankStage | None = None
    # Generated explanations (SEARCH_EXPLAIN_MODE=llm); None: the template's.
    generated: GeneratedExplanations | None = None

    async def run(self, recall: Recall, query: SearchQuery, rerank_by: str = "") -> Answer:
        """The answer to `query`; `rerank_by` is the text the cross-encoder scores candidates against
        (empty: keep recall's order). Raises DependencyError (NOT_LOADED) when there is no collection
        to search in, NoAnswer when recall failed and the popular items are unavailable too."""
        with timings.collect() as stages:
            # Anonymous searches are never personalised: nothing to fetch.
            user_features = self.personaliser.prefetch(query.user_id)
            try:
                try:
                    recalled = await recall(query, max(query.k, self.candidates))
                except DependencyError as error:
                    if error.failure is Failure.NOT_LOADED:
                        raise
                    try:
                        with stage("popular"):
                            popular = await self.fallback.answer(query.k, query.filters, error)
                    except DependencyError as unavailable:
                        raise NoAnswer(error, unavailable) from unavailable
                    return Answer(popular.results, popular.degradations, stages)
                candidates, degradations = retrieval_order(recalled.hits), list(recalled.degradations)

                rerank_depth = 0
                if self.rerank is not None and rerank_by and candidates:
                    with stage("rerank"):
                        reranked = await self.rerank.rerank(rerank_by, recalled.hits)
                    candidates, rerank_depth = reranked.candidates, reranked.depth
                    if reranked.degradation is not None:
                        degradations.append(reranked.degradation)
                results = [result_message(candidate, rank) for rank, candidate in enumerate(candidates[: query.k], 1)]

                ranked = {}
                if user_features is not None and candidates:
                    with stage("personalise"):
                        personalised = await self.personaliser.rank(query.user_id, user_features, candidates, query.k)
                    degradations += personalised.degradations
                    if personalised.order is not None:
                        by_id = {candidate.hit.article_id: candidate for candidate in candidates}
                        results = [personalised_result(by_id[item.article_id], item) for item in personalised.order]
                        ranked = {item.article_id: item for item in personalised.order}

                if query.explain_top:
                    with stage("explain"):
                        explained = explain_top(
                            results, query.explain_top, query.query, query.image is not None, ranked
                        )
                        if self.generated is not None:
                            degradations += await self.generated.rewrite(explained)
                return Answer(results, degradations, stages, rerank_depth)
            finally:
                if user_features is not None and not user_features.done():
                    user_features.cancel()
