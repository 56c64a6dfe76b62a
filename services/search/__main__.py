"""The search service: `python -m services.search`."""

from __future__ import annotations

import grpc

from atelier.config import Endpoints
from atelier.grpc_server import ServiceSpec, run
from fashion.v1 import events_service_pb2, features_service_pb2, search_service_pb2
from fashion.v1 import search_service_pb2_grpc as pb_grpc
from services.search.servicer import SearchServicer

SERVICE_NAME = search_service_pb2.DESCRIPTOR.services_by_name["SearchService"].full_name
# Envoy sends reflection to this service, the edge's default route, so it
# describes every public service, wherever that service runs.
PUBLIC_SERVICES = (
    features_service_pb2.DESCRIPTOR.services_by_name["FeaturesService"].full_name,
    events_service_pb2.DESCRIPTOR.services_by_name["EventsService"].full_name,
)


def register(server: grpc.aio.Server) -> list[str]:
    pb_grpc.add_SearchServiceServicer_to_server(SearchServicer(), server)
    return [SERVICE_NAME]


def main() -> None:
    endpoints = Endpoints.from_env()
    run(
        ServiceSpec(
            name="search",
            host=endpoints.host,
            port=endpoints.search_port,
            metrics_port=endpoints.search_metrics_port,
            register=register,
            reflected_services=PUBLIC_SERVICES,
        )
    )


if __name__ == "__main__":
    main()
