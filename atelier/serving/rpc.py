"""Small helpers for answering gRPC calls."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NoReturn

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status


@dataclass(frozen=True)
class FieldViolation:
    """One bad field of a request; `field` is its path in proto3 JSON names, e.g. `filter.colours`."""

    field: str
    description: str


class InvalidArgument(ValueError):
    """A request failed validation; carries every violation found."""

    def __init__(self, violations: Sequence[FieldViolation]) -> None:
        self.violations = list(violations)
        super().__init__("; ".join(f"{v.field}: {v.description}" for v in self.violations))


def invalid_argument_status(error: InvalidArgument) -> status_pb2.Status:
    """INVALID_ARGUMENT with a google.rpc.BadRequest naming each field (transcoded to JSON by Envoy)."""
    detail = any_pb2.Any()
    detail.Pack(
        error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
                for v in error.violations
            ]
        )
    )
    return status_pb2.Status(code=code_pb2.INVALID_ARGUMENT, message=str(error), details=[detail])


async def abort_invalid_argument(context: grpc.aio.ServicerContext, error: InvalidArgument) -> NoReturn:
    await context.abort_with_status(rpc_status.to_status(invalid_argument_status(error)))
