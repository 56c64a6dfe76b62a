"""A service on the shared bootstrap whose Rank takes a while: for shutdown tests."""

from __future__ import annotations

import asyncio
import sys
from contextlib import AsyncExitStack

import grpc

from atelier.serving.grpc_server import ServiceSpec, run
from fashion.v1 import ranker_service_pb2 as pb
from fashion.v1 import ranker_service_pb2_grpc as pb_grpc


class SlowRanker(pb_grpc.RankerServiceServicer):
    async def Rank(self, request: pb.RankRequest, context: grpc.aio.ServicerContext) -> pb.RankResponse:
        await asyncio.sleep(1.5)
        return pb.RankResponse(items=[pb.RankedItem(article_id=c.article_id, rank=1) for c in request.candidates])


async def build(server: grpc.aio.Server, resources: AsyncExitStack) -> list[str]:
    pb_grpc.add_RankerServiceServicer_to_server(SlowRanker(), server)
    return ["fashion.v1.RankerService"]


if __name__ == "__main__":
    port, metrics_port = int(sys.argv[1]), int(sys.argv[2])
    run(ServiceSpec(name="slow-ranker", host="127.0.0.1", port=port, metrics_port=metrics_port, build=build))
