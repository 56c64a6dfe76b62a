"""fashion.v1.RankerService: the behaviour boost over a candidate list."""

from __future__ import annotations

import grpc

from atelier.serving.rpc import InvalidArgument, abort_invalid_argument
from fashion.v1 import ranker_service_pb2 as pb
from fashion.v1 import ranker_service_pb2_grpc as pb_grpc
from services.ranker.config import RankerSettings
from services.ranker.policy import rank
from services.ranker.validation import validate_rank_request

PERSONAL_SIGNALS = {
    "": pb.PERSONAL_SIGNAL_UNSPECIFIED,
    "recent_click": pb.PERSONAL_SIGNAL_RECENT_CLICK,
    "category_affinity": pb.PERSONAL_SIGNAL_CATEGORY_AFFINITY,
}


class RankerServicer(pb_grpc.RankerServiceServicer):
    def __init__(self, settings: RankerSettings) -> None:
        self._settings = settings

    async def Rank(self, request: pb.RankRequest, context: grpc.aio.ServicerContext) -> pb.RankResponse:
        try:
            inputs = validate_rank_request(request, self._settings.max_candidates)
        except InvalidArgument as error:
            await abort_invalid_argument(context, error)
        ranked = rank(inputs.candidates, inputs.behaviour, inputs.signals, inputs.k, self._settings.boost)
        return pb.RankResponse(
            items=[
                pb.RankedItem(
                    article_id=item.article_id,
                    score=item.score,
                    behaviour_score=item.behaviour_score,
                    boost=item.boost,
                    rank=position,
                    personal_boost=item.personal,
                    personal_signal=PERSONAL_SIGNALS[item.personal_signal],
                    popularity_boost=item.popularity,
                    trending_window=item.trending.window if item.trending else "",
                    trending_clicks=item.trending.clicks if item.trending else 0.0,
                )
                for position, item in enumerate(ranked, start=1)
            ]
        )
