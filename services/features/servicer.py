"""fashion.v1.FeaturesService and fashion.v1.EventsService."""

from __future__ import annotations

import grpc

from atelier.rpc import abort_unimplemented
from fashion.v1 import events_service_pb2 as events_pb
from fashion.v1 import events_service_pb2_grpc as events_grpc
from fashion.v1 import features_service_pb2 as pb
from fashion.v1 import features_service_pb2_grpc as pb_grpc


class FeaturesServicer(pb_grpc.FeaturesServiceServicer):
    async def GetUserFeatures(
        self, request: pb.GetUserFeaturesRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetUserFeaturesResponse:
        await abort_unimplemented(context, "GetUserFeatures")

    async def BatchGetItemSignals(
        self, request: pb.BatchGetItemSignalsRequest, context: grpc.aio.ServicerContext
    ) -> pb.BatchGetItemSignalsResponse:
        await abort_unimplemented(context, "BatchGetItemSignals")

    async def ListPopularItems(
        self, request: pb.ListPopularItemsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListPopularItemsResponse:
        await abort_unimplemented(context, "ListPopularItems")


class EventsServicer(events_grpc.EventsServiceServicer):
    async def RecordClick(
        self, request: events_pb.RecordClickRequest, context: grpc.aio.ServicerContext
    ) -> events_pb.RecordClickResponse:
        await abort_unimplemented(context, "RecordClick")
