"""The features service (FeaturesService and EventsService): `python -m services.features`."""

from __future__ import annotations

import grpc

from atelier.config import Endpoints
from atelier.grpc_server import ServiceSpec, run
from fashion.v1 import events_service_pb2, events_service_pb2_grpc, features_service_pb2
from fashion.v1 import features_service_pb2_grpc as pb_grpc
from services.features.servicer import EventsServicer, FeaturesServicer

SERVICE_NAMES = (
    features_service_pb2.DESCRIPTOR.services_by_name["FeaturesService"].full_name,
    events_service_pb2.DESCRIPTOR.services_by_name["EventsService"].full_name,
)


def register(server: grpc.aio.Server) -> list[str]:
    pb_grpc.add_FeaturesServiceServicer_to_server(FeaturesServicer(), server)
    events_service_pb2_grpc.add_EventsServiceServicer_to_server(EventsServicer(), server)
    return list(SERVICE_NAMES)


def main() -> None:
    endpoints = Endpoints.from_env()
    run(
        ServiceSpec(
            name="features",
            host=endpoints.listen_host,
            port=endpoints.features_port,
            metrics_port=endpoints.features_metrics_port,
            register=register,
        )
    )


if __name__ == "__main__":
    main()
