"""The ranker service: `python -m services.ranker`."""

from __future__ import annotations

import grpc

from atelier.config import Endpoints
from atelier.grpc_server import ServiceSpec, run
from fashion.v1 import ranker_service_pb2
from fashion.v1 import ranker_service_pb2_grpc as pb_grpc
from services.ranker.servicer import RankerServicer

SERVICE_NAME = ranker_service_pb2.DESCRIPTOR.services_by_name["RankerService"].full_name


def register(server: grpc.aio.Server) -> list[str]:
    pb_grpc.add_RankerServiceServicer_to_server(RankerServicer(), server)
    return [SERVICE_NAME]


def main() -> None:
    endpoints = Endpoints.from_env()
    run(
        ServiceSpec(
            name="ranker",
            host=endpoints.listen_host,
            port=endpoints.ranker_port,
            metrics_port=endpoints.ranker_metrics_port,
            register=register,
        )
    )


if __name__ == "__main__":
    main()
