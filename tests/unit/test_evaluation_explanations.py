"""The eval's explanations section from stand-in answers: pass share, signal mentions, latency."""

from __future__ import annotations

from atelier.offline.evaluation import explanations
from fashion.v1 import article_pb2, degradation_pb2, explanation_pb2, search_service_pb2

Kind = explanation_pb2.ExplanationSignalKind
Reason = degradation_pb2.DegradationReason


def _result(
    rank: int, text: str, source: int, *signals: explanation_pb2.ExplanationSignal
) -> search_service_pb2.SearchResult:
    explanation = explanation_pb2.Explanation(text=text, source=source, signals=list(signals))
    return search_service_pb2.SearchResult(
        article=article_pb2.Article(article_id=str(rank)), rank=rank, explanation=explanation
    )


class FakeClient:
    def __init__(self, replies: list[search_service_pb2.SearchTextResponse]) -> None:
        self.replies = replies
        self.asked: list[tuple[str, int, int, str]] = []

    def explained(
        self, query: str, k: int, explain_top: int, user_id: str = ""
    ) -> search_service_pb2.SearchTextResponse:
        self.asked.append((query, k, explain_top, user_id))
        return self.replies[len(self.asked) - 1]


GENERATED, TEMPLATE = explanation_pb2.EXPLANATION_SOURCE_GENERATED, explanation_pb2.EXPLANATION_SOURCE_TEMPLATE
CLICK = explanation_pb2.ExplanationSignal(kind=Kind.EXPLANATION_SIGNAL_KIND_RECENT_CLICK)
NAVY = explanation_pb2.ExplanationSignal(
    kind=Kind.EXPLANATION_SIGNAL_KIND_QUERY_ATTRIBUTE, field="colour", value="Dark Blue"
)


def test_pass_share_mentions_and_latency_come_from_the_answers() -> None:
    personal = search_service_pb2.SearchTextResponse(
        results=[
            _result(1, "You looked at these trousers recently.", GENERATED, CLICK, NAVY),
            _result(2, "These trousers match your search.", GENERATED, CLICK, NAVY),
            _result(3, "Dark blue trousers.", TEMPLATE, NAVY),
        ],
        degradations=[
            degradation_pb2.Degradation(reason=Reason.DEGRADATION_REASON_EXPLANATION_UNGROUNDED, component="explainer")
        ],
        timings=[search_service_pb2.StageTiming(stage="explain", millis=2000)],
    )
    anonymous = search_service_pb2.SearchTextResponse(
        results=[_result(rank, "Navy trousers from your search.", GENERATED, NAVY) for rank in (1, 2, 3)],
        timings=[search_service_pb2.StageTiming(stage="explain", millis=1000)],
    )
    client = FakeClient([personal, anonymous])
    result = explanations.evaluate(client, [("navy trousers", "u1"), ("navy trousers", "")])  # type: ignore[arg-type]
    assert client.asked[0] == ("navy trousers", explanations.K, explanations.EXPLAIN_TOP, "u1")
    assert (result["generated"], result["passed"], result["ungrounded"]) == (6, 5, 1)
    assert result["pass_share"] == 5 / 6
    # The second result of the first answer does not say the click that moved it; "navy" is Dark Blue's word.
    assert (result["signal_mentioned"], result["mention_share"]) == (4, 4 / 5)
    assert result["explain_ms"] == {"p50": 1000, "p99": 2000, "n": 2}
    text = "\n".join(explanations.section(result))
    assert "83.3%" in text and "80.0%" in text


def test_template_mode_says_so() -> None:
    reply = search_service_pb2.SearchTextResponse(results=[_result(1, "Dark blue trousers.", TEMPLATE, NAVY)])
    result = explanations.evaluate(FakeClient([reply]), [("navy trousers", "")])  # type: ignore[arg-type]
    assert result["pass_share"] is None
    assert "template mode" in "\n".join(explanations.section(result))
