"""The ranker service: `python -m services.ranker`."""

from __future__ import annotations

import grpc

from atelier.serving.grpc_server import ServiceSpec, run
from fashion.v1 import ranker_service_pb2
from fashion.v1 import ranker_service_pb2_grpc as pb_grpc
from services.ranker.config import RankerSettings
from services.ranker.servicer import RankerServicer

SERVICE_NAME = ranker_service_pb2.DESCRIPTOR.services_by_name["RankerService"].full_name


def main() -> None:
    settings = RankerSettings.from_env()

    def register(server: grpc.aio.Server) -> list[str]:
        pb_grpc.add_RankerServiceServicer_to_server(RankerServicer(settings), server)
        return [SERVICE_NAME]

    endpoints = settings.endpoints
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
