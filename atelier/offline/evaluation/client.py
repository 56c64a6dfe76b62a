"""The evaluation's view of the running stack: gRPC through the edge, as a user's app calls it."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from atelier.edge.client import edge_channel
from fashion.v1 import degradation_pb2, events_service_pb2, features_service_pb2, search_service_pb2
from fashion.v1 import events_service_pb2_grpc as events_grpc
from fashion.v1 import features_service_pb2_grpc as features_grpc
from fashion.v1 import search_service_pb2_grpc as search_grpc

# Every candidate a search retrieves (SEARCH_CANDIDATES' default). Asked for all of them, an
# answer holds the whole candidate list, so its retrieval order is plain ANN's top 100 whatever
# the rerank depth; `Ranked.top` then cuts both orders to the depth measured.
ALL_CANDIDATES = 100


@dataclass(frozen=True)
class Ranked:
    """One search answer: article ids in each stage's order, and what was degraded."""

    final: list[str]
    retrieval: list[str]  # the same articles ordered by retrieval score: plain ANN's order when
    # the answer holds every candidate (ALL_CANDIDATES), since a rerank deeper than k brings up others
    reranked: bool
    personalised: bool  # some result carries a behaviour score
    scores: list[float]
    degradations: list[str]
    product_types: list[str] = field(default_factory=list)  # of `final`, in its order
    timings: dict[str, float] = field(default_factory=dict)  # milliseconds by stage, as the answer says

    def top(self, k: int) -> Ranked:
        """The first k of each order (of an answer asked for ALL_CANDIDATES)."""
        return replace(
            self,
            final=self.final[:k],
            retrieval=self.retrieval[:k],
            scores=self.scores[:k],
            product_types=self.product_types[:k],
        )

    def canonical(self) -> list[tuple[float, str]]:
        """(score, id) in order, equal-score runs sorted by id: two answers that differ only in how
        ties were broken compare equal."""
        return sorted(zip((-round(s, 5) for s in self.scores), self.final, strict=True))


def undegraded(ask: Callable[[], Ranked], attempts: int = 3) -> Ranked:
    """The first answer that is not degraded, else the last: a rerank over its budget on a busy
    machine answers in retrieval order, which measures the machine, not the ranking."""
    answer = ask()
    for _ in range(attempts - 1):
        if not answer.degradations:
            break
        answer = ask()
    return answer


class StackClient:
    def __init__(self, edge_address: str, timeout_s: float = 10.0) -> None:
        self._channel = edge_channel(edge_address)
        self._search = search_grpc.SearchServiceStub(self._channel)
        self._events = events_grpc.EventsServiceStub(self._channel)
        self._features = features_grpc.FeaturesServiceStub(self._channel)
        self._timeout_s = timeout_s

    def search(self, query: str, k: int, user_id: str = "") -> Ranked:
        request = search_service_pb2.SearchTextRequest(query=query, k=k, user_id=user_id)
        return _ranked(self._search.SearchText(request, timeout=self._timeout_s))

    def explained(
        self, query: str, k: int, explain_top: int, user_id: str = ""
    ) -> search_service_pb2.SearchTextResponse:
        """SearchText asking for the top `explain_top` results' explanations: the whole reply. Generation may take
        seconds on a CPU: the deadline is the client's and a minute, whichever is longer."""
        request = search_service_pb2.SearchTextRequest(query=query, k=k, user_id=user_id, explain_top=explain_top)
        return self._search.SearchText(request, timeout=max(self._timeout_s, 60.0))

    def search_image(self, image: bytes, k: int, user_id: str = "") -> Ranked:
        """SearchImage; raises grpc.RpcError FAILED_PRECONDITION when the stack runs without vision."""
        request = search_service_pb2.SearchImageRequest(image=image, k=k, user_id=user_id)
        return _ranked(self._search.SearchImage(request, timeout=self._timeout_s))

    def search_hybrid(self, query: str, k: int, image: bytes = b"", user_id: str = "") -> Ranked:
        """SearchHybrid, with a photo or (empty `image`) the query alone."""
        request = search_service_pb2.SearchHybridRequest(query=query, image=image, k=k, user_id=user_id)
        return _ranked(self._search.SearchHybrid(request, timeout=self._timeout_s))

    def click(self, user_id: str, item_id: str, position: int, query: str) -> None:
        click = events_service_pb2.ClickEvent(
            user_id=user_id, item_id=item_id, position=position, source="search", device="other", query=query
        )
        self._events.RecordClick(events_service_pb2.RecordClickRequest(click=click), timeout=self._timeout_s)

    def recent_clicks(self, user_id: str) -> list[str]:
        reply = self._features.GetUserFeatures(
            features_service_pb2.GetUserFeaturesRequest(user_id=user_id), timeout=self._timeout_s
        )
        return [click.article_id for click in reply.user_features.recent_clicks]

    def wait_for_clicks(self, user_id: str, count: int, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.recent_clicks(user_id)) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{user_id}: {count} clicks not visible after {timeout_s:.0f} s")
            time.sleep(0.05)

    def close(self) -> None:
        self._channel.close()


def _ranked(
    reply: search_service_pb2.SearchTextResponse
    | search_service_pb2.SearchImageResponse
    | search_service_pb2.SearchHybridResponse,
) -> Ranked:
    results = list(reply.results)
    by_retrieval = sorted(results, key=lambda r: (-r.retrieval_score, r.rank))
    return Ranked(
        final=[r.article.article_id for r in results],
        retrieval=[r.article.article_id for r in by_retrieval],
        reranked=any(r.HasField("rerank_score") for r in results),
        personalised=any(r.HasField("behaviour_score") for r in results),
        scores=[r.score for r in results],
        degradations=[f"{d.component}: {degradation_pb2.DegradationReason.Name(d.reason)}" for d in reply.degradations],
        product_types=[r.article.product_type for r in results],
        timings={timing.stage: timing.millis for timing in reply.timings},
    )
