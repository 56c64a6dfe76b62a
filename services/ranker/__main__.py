"""The ranker service: `python -m services.ranker`."""

from __future__ import annotations

from contextlib import AsyncExitStack

import grpc

from atelier.serving.grpc_server import serve
from fashion.v1 import ranker_service_pb2
from fashion.v1 import ranker_service_pb2_grpc as pb_grpc
from services.ranker.config import RankerSettings
from services.ranker.servicer import RankerServicer

SERVICE_NAME = ranker_service_pb2.DESCRIPTOR.services_by_name["RankerService"].full_name


async def build(settings: RankerSettings, server: grpc.aio.Server, resources: AsyncExitStack) -> list[str]:
    pb_grpc.add_RankerServiceServicer_to_server(RankerServicer(settings), server)
    return [SERVICE_NAME]


def main() -> None:
    serve("ranker", RankerSettings.from_env(), build)


if __name__ == "__main__":
    main()
