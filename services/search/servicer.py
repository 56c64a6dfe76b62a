"""fashion.v1.SearchService."""

from __future__ import annotations

import logging

import grpc

from atelier.rpc import InvalidArgument, abort_invalid_argument, abort_unimplemented
from fashion.v1 import search_service_pb2 as pb
from fashion.v1 import search_service_pb2_grpc as pb_grpc
from services.search.config import SearchSettings
from services.search.fallback import PopularFallback
from services.search.filter_values import FilterValues
from services.search.text_search import DependencyError, TextSearch
from services.search.validation import validate_text_request

log = logging.getLogger(__name__)


class SearchServicer(pb_grpc.SearchServiceServicer):
    def __init__(
        self,
        settings: SearchSettings,
        text_search: TextSearch,
        filter_values: FilterValues,
        fallback: PopularFallback,
    ) -> None:
        self._settings = settings
        self._text_search = text_search
        self._filter_values = filter_values
        self._fallback = fallback

    async def SearchText(
        self, request: pb.SearchTextRequest, context: grpc.aio.ServicerContext
    ) -> pb.SearchTextResponse:
        try:
            query = validate_text_request(
                request.query,
                request.k,
                request.user_id,
                request.filter,
                default_k=self._settings.default_k,
                max_k=self._settings.max_k,
                max_query_chars=self._settings.max_query_chars,
                known_values=self._filter_values.values,
            )
        except InvalidArgument as error:
            await abort_invalid_argument(context, error)
        try:
            return await self._text_search.search(query)
        except DependencyError as error:
            log.warning("search failed", extra={"component": error.component, "error": str(error)})
            if "collection not found" in str(error) and error.component == "milvus":
                await context.abort(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"the catalogue is not loaded (run `atelier catalog load`): {error}",
                )
            try:
                return await self._fallback.answer(
                    query.k, query.filters, error.component, str(error), error.timed_out, error.circuit_open
                )
            except grpc.aio.AioRpcError as fallback_error:
                log.warning("popularity fallback failed", extra={"error": str(fallback_error)})
            code = grpc.StatusCode.DEADLINE_EXCEEDED if error.timed_out else grpc.StatusCode.UNAVAILABLE
            await context.abort(code, f"{error}; popular items unavailable too")

    async def SearchImage(
        self, request: pb.SearchImageRequest, context: grpc.aio.ServicerContext
    ) -> pb.SearchImageResponse:
        await abort_unimplemented(context, "SearchImage")

    async def SearchHybrid(
        self, request: pb.SearchHybridRequest, context: grpc.aio.ServicerContext
    ) -> pb.SearchHybridResponse:
        await abort_unimplemented(context, "SearchHybrid")
