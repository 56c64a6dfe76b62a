"""Generated explanations with a stand-in explainer: shown when grounded, the template's otherwise, and why."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from atelier.serving.circuit_breaker import BreakerSettings
from atelier.serving.dependency import Dependency
from fashion.v1 import article_pb2, degradation_pb2, explanation_pb2
from fashion.v1 import ranker_service_pb2 as ranker
from fashion.v1 import search_service_pb2 as pb
from services.search.explanations import Explained, explain_top
from services.search.generated_explanations import GeneratedExplanations

Reason = degradation_pb2.DegradationReason
GENERATED, TEMPLATE = explanation_pb2.EXPLANATION_SOURCE_GENERATED, explanation_pb2.EXPLANATION_SOURCE_TEMPLATE
KNOWN = {
    "colour": {v.lower(): v for v in ("Black", "Dark Blue", "Red")},
    "product_type": {v.lower(): v for v in ("Trousers", "Dress")},
}
JEANS = article_pb2.Article(
    article_id="0108775015", name="Slim Jeans", product_type="Trousers", colour="Dark Blue", index_group="Ladieswear"
)


class FakeExplainer:
    def __init__(self, texts: Sequence[str] = (), delay_s: float = 0.0, error: Exception | None = None) -> None:
        self.texts, self.delay_s, self.error = list(texts), delay_s, error
        self.calls: list[list[str]] = []

    async def explain(self, facts: Sequence[str], timeout_s: float | None = None) -> list[str]:
        self.calls.append(list(facts))
        await asyncio.sleep(self.delay_s)
        if self.error:
            raise self.error
        return self.texts[: len(facts)]


def _stage(explainer: FakeExplainer, known: dict | None = KNOWN, budget_s: float = 0.5) -> GeneratedExplanations:
    dependency = Dependency("explainer", BreakerSettings(window=4, minimum_calls=2, open_s=60), budget_s)
    return GeneratedExplanations(explainer, dependency, lambda: known, max_generated=2, max_in_flight=1)  # type: ignore[arg-type]


def _explained(n: int = 3) -> list[Explained]:
    results = [pb.SearchResult(article=JEANS, rank=rank) for rank in range(1, n + 1)]
    clicked = ranker.RankedItem(personal_boost=1.5, personal_signal=ranker.PERSONAL_SIGNAL_RECENT_CLICK)
    return explain_top(results, n, "navy pants", False, {JEANS.article_id: clicked})


async def test_grounded_sentences_replace_the_templates_of_the_first_max_generated() -> None:
    explainer = FakeExplainer(["You looked at these navy pants recently.", "Dark blue trousers, as you searched."])
    explained = _explained()
    templates = [each.result.explanation.text for each in explained]
    assert await _stage(explainer).rewrite(explained) == []
    assert [each.result.explanation.source for each in explained] == [GENERATED, GENERATED, TEMPLATE]
    assert explained[0].result.explanation.text == "You looked at these navy pants recently."
    assert explained[2].result.explanation.text == templates[2]
    assert len(explainer.calls) == 1 and explainer.calls[0] == [each.facts() for each in explained[:2]]
    # The signals stay the answer's own, whoever wrote the sentence.
    assert explained[0].result.explanation.signals[0].kind == explanation_pb2.EXPLANATION_SIGNAL_KIND_RECENT_CLICK


async def test_an_ungrounded_sentence_keeps_the_template_and_says_what_it_claimed() -> None:
    explainer = FakeExplainer(["A red dress, on sale today.", ""])
    explained = _explained()
    templates = [each.result.explanation.text for each in explained]
    first, second = await _stage(explainer).rewrite(explained)
    assert [each.result.explanation.text for each in explained] == templates
    assert {each.result.explanation.source for each in explained} == {TEMPLATE}
    assert first.reason == Reason.DEGRADATION_REASON_EXPLANATION_UNGROUNDED
    assert (first.component, first.fallback) == ("explainer", "template")
    assert first.detail.startswith('result 1: colour "red"; garment "dress"; claim "on sale"')
    assert second.detail.startswith("result 2: empty")


async def test_past_the_budget_or_failing_the_templates_answer_with_the_reason() -> None:
    explained = _explained()
    (late,) = await _stage(FakeExplainer(["x"], delay_s=0.2), budget_s=0.05).rewrite(explained)
    assert late.reason == Reason.DEGRADATION_REASON_INFERENCE_TIMEOUT and "over the 50 ms budget" in late.detail
    (failed,) = await _stage(FakeExplainer(error=ConnectionError("refused"))).rewrite(explained)
    assert failed.reason == Reason.DEGRADATION_REASON_INFERENCE_UNAVAILABLE
    assert {each.result.explanation.source for each in explained} == {TEMPLATE}


async def test_a_full_generation_slot_answers_at_once_with_the_templates() -> None:
    stage = _stage(FakeExplainer(["Dark blue trousers."] * 2, delay_s=0.1))
    first = asyncio.create_task(stage.rewrite(_explained()))
    await asyncio.sleep(0.01)
    assert stage.in_flight == 1
    explained = _explained()
    (busy,) = await stage.rewrite(explained)
    assert busy.reason == Reason.DEGRADATION_REASON_DOWNSTREAM_CAPACITY_REJECTED
    assert busy.detail.startswith("2 explanation(s): 1 generation(s) in flight")
    assert await first == [] and stage.in_flight == 0


async def test_without_the_catalogues_words_nothing_is_generated() -> None:
    explainer = FakeExplainer(["Dark blue trousers."])
    (unchecked,) = await _stage(explainer, known=None).rewrite(_explained())
    assert unchecked.reason == Reason.DEGRADATION_REASON_MODEL_NOT_READY and not explainer.calls
