"""What any call may send, and what any answer may say: the guard every service runs behind.

- A request that is not a valid message of its type answers INVALID_ARGUMENT instead of
  grpc's UNKNOWN "Unexpected <class 'google.protobuf.message.DecodeError'>". When a string
  field holds bytes that are not UTF-8 (proto3 requires UTF-8; Envoy's transcoder forwards
  `?query=%FF%FE` as it came), the answer is a google.rpc.BadRequest naming that field
  (HTTP 400 at the edge), found by atelier.serving.wire.
- An exception a servicer did not expect answers INTERNAL with a generic message carrying
  the request's id (Envoy's `x-request-id`), never the exception's class or text; the
  exception is logged in full with the same id.

Requests over the server's size limit never get here: grpc answers RESOURCE_EXHAUSTED
(atelier.serving.grpc_server sets the limit).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, NoReturn

import grpc
from google.protobuf import descriptor_pool
from google.protobuf.descriptor import Descriptor

from atelier.serving.rpc import FieldViolation, InvalidArgument, abort_invalid_argument
from atelier.serving.wire import invalid_utf8_field

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "x-request-id"


class Undecodable:
    """Stands in for a request message that failed to parse; the guarded behaviour answers it."""

    def __init__(self, data: bytes, descriptor: Descriptor | None) -> None:
        self.type_name = descriptor.full_name if descriptor else "request"
        self.field = invalid_utf8_field(data, descriptor) if descriptor else None

    async def refuse(self, context: grpc.aio.ServicerContext) -> NoReturn:
        if self.field:
            await abort_invalid_argument(context, InvalidArgument([FieldViolation(self.field, "is not valid UTF-8")]))
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"the request is not a valid {self.type_name} message")


def _request_type(method: str) -> Descriptor | None:
    """The request message of `/package.Service/Method`, from the default descriptor pool."""
    try:
        return descriptor_pool.Default().FindMethodByName(method.lstrip("/").replace("/", ".")).input_type
    except KeyError:
        return None


def _request_id(context: grpc.aio.ServicerContext) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == REQUEST_ID_HEADER:
            return value if isinstance(value, str) else value.decode(errors="replace")
    return ""


async def _internal(context: grpc.aio.ServicerContext, method: str) -> NoReturn:
    request_id = _request_id(context)
    log.exception("unexpected error", extra={"method": method, "request_id": request_id})
    suffix = f" (request id {request_id})" if request_id else ""
    await context.abort(grpc.StatusCode.INTERNAL, f"internal error{suffix}")


class RequestGuard(grpc.aio.ServerInterceptor):
    """Wraps every async handler: its request parsing and its behaviour (see the module's docstring)."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = handler_call_details.method
        behaviour = handler.unary_unary or handler.unary_stream or handler.stream_unary or handler.stream_stream
        if not (inspect.iscoroutinefunction(behaviour) or inspect.isasyncgenfunction(behaviour)):
            return handler  # not an async handler: left as it is
        guarded = _guard(behaviour, method, handler.request_streaming)
        descriptor = _request_type(method)
        deserialize = handler.request_deserializer

        def parse(data: bytes) -> Any:
            try:
                return deserialize(data) if deserialize else data
            except Exception:  # noqa: BLE001 (DecodeError, and whatever else a parser raises)
                return Undecodable(data, descriptor)

        kind = {
            (False, False): grpc.unary_unary_rpc_method_handler,
            (False, True): grpc.unary_stream_rpc_method_handler,
            (True, False): grpc.stream_unary_rpc_method_handler,
            (True, True): grpc.stream_stream_rpc_method_handler,
        }[(handler.request_streaming, handler.response_streaming)]
        return kind(guarded, request_deserializer=parse, response_serializer=handler.response_serializer)


def _guard(behaviour: Callable[..., Any], method: str, request_streaming: bool) -> Callable[..., Any]:
    async def requests(request: Any, context: grpc.aio.ServicerContext) -> Any:
        """The request, or for a streaming one an iterator that refuses an undecodable message."""
        if not request_streaming:
            if isinstance(request, Undecodable):
                await request.refuse(context)
            return request

        async def checked() -> AsyncIterator[Any]:
            async for message in request:
                if isinstance(message, Undecodable):
                    await message.refuse(context)
                yield message

        return checked()

    if inspect.isasyncgenfunction(behaviour):

        async def streamed(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            checked = await requests(request, context)
            try:
                async for response in behaviour(checked, context):
                    yield response
            except grpc.aio.AbortError:
                raise
            except Exception:  # noqa: BLE001 (the answer must not carry it; logged in full)
                await _internal(context, method)

        return streamed

    async def answered(request: Any, context: grpc.aio.ServicerContext) -> Any:
        checked = await requests(request, context)
        try:
            return await behaviour(checked, context)
        except grpc.aio.AbortError:
            raise
        except Exception:  # noqa: BLE001 (the answer must not carry it; logged in full)
            await _internal(context, method)

    return answered
