"""fashion.v1.RankerService."""

from __future__ import annotations

import grpc

from atelier.rpc import abort_unimplemented
from fashion.v1 import ranker_service_pb2 as pb
from fashion.v1 import ranker_service_pb2_grpc as pb_grpc


class RankerServicer(pb_grpc.RankerServiceServicer):
    async def Rank(self, request: pb.RankRequest, context: grpc.aio.ServicerContext) -> pb.RankResponse:
        await abort_unimplemented(context, "Rank")
