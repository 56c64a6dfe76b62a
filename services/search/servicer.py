"""fashion.v1.SearchService."""

from __future__ import annotations

import grpc

from atelier.rpc import abort_unimplemented
from fashion.v1 import search_service_pb2 as pb
from fashion.v1 import search_service_pb2_grpc as pb_grpc


class SearchServicer(pb_grpc.SearchServiceServicer):
    async def SearchText(
        self, request: pb.SearchTextRequest, context: grpc.aio.ServicerContext
    ) -> pb.SearchTextResponse:
        await abort_unimplemented(context, "SearchText")

    async def SearchImage(
        self, request: pb.SearchImageRequest, context: grpc.aio.ServicerContext
    ) -> pb.SearchImageResponse:
        await abort_unimplemented(context, "SearchImage")

    async def SearchHybrid(
        self, request: pb.SearchHybridRequest, context: grpc.aio.ServicerContext
    ) -> pb.SearchHybridResponse:
        await abort_unimplemented(context, "SearchHybrid")
