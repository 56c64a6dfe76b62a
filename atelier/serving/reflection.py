"""Server reflection that resolves every symbol a client may ask for: services, methods, messages, enums.

grpcio-reflection answers `file_containing_symbol` with its descriptor pool's FindFileContainingSymbol,
which finds services, messages, enums and fields but not methods (grpc/grpc#34743), nor enum values by
the name grpcurl asks for (Enum.VALUE), so `grpcurl describe fashion.v1.SearchService.SearchText`
answered "Symbol not found". Here a method resolves to its service's file and an enum value to its
enum's, when the pool's service or enum has that member (the edge's pool lacks the methods Envoy does
not route: they stay unknown).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import grpc
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc


class ReflectionServicer(reflection.aio.ReflectionServicer):
    """grpcio-reflection's servicer, which also finds the file of a method or an enum value."""

    def _file_containing_symbol(
        self, request: reflection_pb2.ServerReflectionRequest, fully_qualified_name: str
    ) -> reflection_pb2.ServerReflectionResponse:
        answer = super()._file_containing_symbol(request, fully_qualified_name)
        if not answer.HasField("error_response"):
            return answer
        parent, _, name = fully_qualified_name.rpartition(".")
        if name in self._members(parent):
            return super()._file_containing_symbol(request, parent)
        return answer

    def _members(self, parent: str) -> Mapping[str, object]:
        """The methods of service `parent`, or the values of enum `parent`, by name; {} without either."""
        for find, members in (
            (self._pool.FindServiceByName, "methods_by_name"),
            (self._pool.FindEnumTypeByName, "values_by_name"),
        ):
            try:
                return getattr(find(parent), members)
            except KeyError:
                continue
        return {}


def enable_server_reflection(
    service_names: Iterable[str], server: grpc.aio.Server, pool: DescriptorPool | None = None
) -> None:
    """Serves reflection of `service_names` (from `pool`, default: every descriptor imported) on `server`."""
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(ReflectionServicer(service_names, pool), server)
