"""fashion.v1.SearchService."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import TypeVar

import grpc

from atelier.serving.rpc import FieldViolation, InvalidArgument, abort_invalid_argument
from fashion.v1 import search_service_pb2 as pb
from fashion.v1 import search_service_pb2_grpc as pb_grpc
from services.search.config import SearchSettings
from services.search.fallback import PopularFallback
from services.search.filter_values import FilterValues
from services.search.image_validation import CheckedImage, ImageLimits, check_image
from services.search.text_search import DependencyError, TextSearch
from services.search.validation import validate_hybrid_request, validate_image_request, validate_text_request
from services.search.vision_search import VisionSearch

log = logging.getLogger(__name__)


VISION_OFF = (
    "image and hybrid search are off: VISION_ENABLED=0 (they need the CLIP models: run "
    "`atelier models train-clip`, or point ATELIER_CLIP_MODEL_DIR at a CLIP checkpoint, and restart the stack)"
)
Response = TypeVar("Response", pb.SearchTextResponse, pb.SearchImageResponse, pb.SearchHybridResponse)


class SearchServicer(pb_grpc.SearchServiceServicer):
    def __init__(
        self,
        settings: SearchSettings,
        text_search: TextSearch,
        filter_values: FilterValues,
        fallback: PopularFallback,
        vision_search: VisionSearch | None = None,
    ) -> None:
        self._settings = settings
        self._text_search = text_search
        self._filter_values = filter_values
        self._fallback = fallback
        self._vision = vision_search
        self._image_limits = ImageLimits(settings.max_image_bytes, settings.max_image_pixels)

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
        return await self._answer(
            context,
            pb.SearchTextResponse,
            self._text_search.search(query),
            query.k,
            query.filters,
            self._settings.collection,
        )

    async def SearchImage(
        self, request: pb.SearchImageRequest, context: grpc.aio.ServicerContext
    ) -> pb.SearchImageResponse:
        vision = await self._vision_on(context)
        try:
            query = validate_image_request(
                await self._check_image(request.image),
                request.k,
                request.user_id,
                request.filter,
                default_k=self._settings.default_k,
                max_k=self._settings.max_k,
                known_values=self._filter_values.values,
            )
        except InvalidArgument as error:
            await abort_invalid_argument(context, error)
        collection = self._settings.image_collection
        return await self._answer(
            context, pb.SearchImageResponse, vision.search_image(query), query.k, query.filters, collection
        )

    async def SearchHybrid(
        self, request: pb.SearchHybridRequest, context: grpc.aio.ServicerContext
    ) -> pb.SearchHybridResponse:
        vision = await self._vision_on(context)
        try:
            query = validate_hybrid_request(
                request.query,
                await self._check_image(request.image) if request.image else None,
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
        collection = self._settings.collection
        return await self._answer(
            context, pb.SearchHybridResponse, vision.search_hybrid(query), query.k, query.filters, collection
        )

    async def _vision_on(self, context: grpc.aio.ServicerContext) -> VisionSearch:
        if self._vision is None:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, VISION_OFF)
        assert self._vision is not None
        return self._vision

    async def _check_image(self, data: bytes) -> CheckedImage | FieldViolation:
        # Decoding is CPU work: off the event loop, which serves every other request.
        return await asyncio.to_thread(check_image, data, self._image_limits)

    async def _answer(
        self,
        context: grpc.aio.ServicerContext,
        response: type[Response],
        search: Awaitable[Response],
        k: int,
        filters: dict[str, list[str]],
        collection: str,
    ) -> Response:
        """The search's answer; when it fails, popular items with the reason (or the error, when they fail too)."""
        try:
            return await search
        except DependencyError as error:
            log.warning("search failed", extra={"component": error.component, "error": str(error)})
            if "collection not found" in str(error) and error.component == "milvus":
                await context.abort(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"{collection} is not loaded (run `atelier catalog load`): {error}",
                )
            try:
                popular = await self._fallback.answer(
                    k, filters, error.component, str(error), error.timed_out, error.circuit_open
                )
                return response(results=popular.results, degradations=popular.degradations)
            except grpc.aio.AioRpcError as fallback_error:
                log.warning("popularity fallback failed", extra={"error": str(fallback_error)})
            code = grpc.StatusCode.DEADLINE_EXCEEDED if error.timed_out else grpc.StatusCode.UNAVAILABLE
            await context.abort(code, f"{error}; popular items unavailable too")
