"""Explanations written by a language model (SEARCH_EXPLAIN_MODE=llm), each checked before a shopper reads it.

The template's explanations are set first (services/search/explanations.py); this stage replaces the first
`max_generated` of them with sentences Triton's explainer writes from each result's facts (its article's
words and the answer's reasons, nothing else), one call for the answer. A sentence replaces the template's
only when it passes the check (services/search/grounding.py): nothing the article is not, no reason the
answer does not have. Otherwise the template's stays, and the answer says why: a sentence that failed the
check, a generation past its budget or failed, the model not ready, or every generation slot taken
(`max_in_flight`: the cap that keeps the cores for searches that ask for no explanation).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence

from prometheus_client import Counter

from atelier.serving.dependency import Dependency, DependencyError
from atelier.serving.explaining import Explainer
from fashion.v1 import degradation_pb2, explanation_pb2
from services.search.answers import Reason, degradation, inference_reason
from services.search.explanations import Explained
from services.search.grounding import Vocabulary, problems, vocabulary

log = logging.getLogger(__name__)
FALLBACK = "template"
SENTENCES = Counter(
    "search_generated_explanations",
    "Generated explanations by outcome: shown, ungrounded (failed the check), or not generated (over budget, "
    "failed, not ready, busy).",
    ["outcome"],
)


class GeneratedExplanations:
    def __init__(
        self,
        explainer: Explainer,
        dependency: Dependency,
        known_values: Callable[[], Mapping[str, Mapping[str, str]] | None],
        max_generated: int,
        max_in_flight: int,
    ) -> None:
        """`known_values`: the catalogue's filter values now (None until read), the words the check knows."""
        self._explainer = explainer
        self._dependency = dependency
        self._known_values = known_values
        self._max_generated = max_generated
        self._max_in_flight = max_in_flight
        self.in_flight = 0
        self._vocabulary: tuple[object, Vocabulary] | None = None

    def _words(self) -> Vocabulary | None:
        """The check's vocabulary, rebuilt only when the catalogue's values change."""
        values = self._known_values()
        if values is None:
            return None
        if self._vocabulary is None or self._vocabulary[0] is not values:
            self._vocabulary = (values, vocabulary(values))
        return self._vocabulary[1]

    async def rewrite(self, explained: Sequence[Explained]) -> list[degradation_pb2.Degradation]:
        """Replaces the template sentences of the first `max_generated` results with generated ones that pass
        the check; the degradations of those that keep the template's."""
        chosen = list(explained[: self._max_generated])
        if not chosen:
            return []
        words = self._words()
        if words is None:
            return [self._kept(chosen, Reason.DEGRADATION_REASON_MODEL_NOT_READY, "the catalogue's words not read yet")]
        if self.in_flight >= self._max_in_flight:
            busy = f"{self.in_flight} generation(s) in flight, the most SEARCH_EXPLAIN_MAX_IN_FLIGHT allows"
            return [self._kept(chosen, Reason.DEGRADATION_REASON_DOWNSTREAM_CAPACITY_REJECTED, busy)]
        facts = [each.facts() for each in chosen]
        self.in_flight += 1
        try:
            texts = await self._dependency.call("explain", lambda timeout_s: self._explainer.explain(facts, timeout_s))
        except DependencyError as error:
            detail = f"over the {self._dependency.timeout_s * 1000:.0f} ms budget" if error.timed_out else error.detail
            log.warning("explanations not generated", extra={"error": detail})
            return [self._kept(chosen, inference_reason(error), detail)]
        finally:
            self.in_flight -= 1
        degradations = []
        for position, (each, text) in enumerate(zip(chosen, texts, strict=True), 1):
            found = problems(text, each.fields, words, [signal.kind for signal in each.signals]) if text else ["empty"]
            if found:
                SENTENCES.labels("ungrounded").inc()
                detail = f"result {each.result.rank or position}: {'; '.join(found)} in {text!r}"
                degradations.append(
                    degradation(
                        Reason.DEGRADATION_REASON_EXPLANATION_UNGROUNDED, self._dependency.name, FALLBACK, detail
                    )
                )
                continue
            SENTENCES.labels("shown").inc()
            each.result.explanation.text = text
            each.result.explanation.source = explanation_pb2.EXPLANATION_SOURCE_GENERATED
        return degradations

    def _kept(self, chosen: Sequence[Explained], reason: int, detail: str) -> degradation_pb2.Degradation:
        SENTENCES.labels("not_generated").inc(len(chosen))
        return degradation(reason, self._dependency.name, FALLBACK, f"{len(chosen)} explanation(s): {detail}")
