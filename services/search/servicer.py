"""fashion.v1.SearchService: three RPCs, one path (validate -> pipeline -> response, or a status)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import TypeVar

import grpc
from google.api import httpbody_pb2
from opentelemetry import trace
from prometheus_client import Counter

from atelier.offline.catalog.schema import normalise_article_id
from atelier.serving.dependency import DependencyError
from atelier.serving.rpc import FieldViolation, InvalidArgument, abort_invalid_argument
from fashion.v1 import search_service_pb2 as pb
from fashion.v1 import search_service_pb2_grpc as pb_grpc
from services.search import timings
from services.search.answers import Answer, reason_label
from services.search.config import RequestLimits
from services.search.filter_values import FilterValues
from services.search.image_validation import CheckedImage, check_image
from services.search.photos import ArticlePhotos, PhotosUnavailable
from services.search.pipeline import NoAnswer, SearchPipeline
from services.search.recall import Recall, Recalls
from services.search.single_flight import SingleFlight
from services.search.validation import SearchRequest, validate_request

log = logging.getLogger(__name__)

VISION_OFF = (
    "image and hybrid search are off: VISION_ENABLED=0 (set it to 1 and restart search; they use the CLIP "
    "models: `atelier models train-clip`, then `atelier models publish clip models/clip`)"
)
# Searches answered with a degradation, by reason: over the calls (grpc_server_handling_seconds_count), the
# degraded share that deploy/prometheus/rules.yml records and alerts on.
DEGRADED = Counter("search_degraded", "Searches answered with a degradation, by reason (each reason once).", ["reason"])
SHARED = Counter(
    "search_single_flight_shared", "Searches answered by an identical search's run already in flight.", ["method"]
)
PHOTO_CACHE_CONTROL = "public, max-age=86400"
Response = TypeVar("Response", pb.SearchTextResponse, pb.SearchImageResponse, pb.SearchHybridResponse)


@dataclass
class SearchServicer(pb_grpc.SearchServiceServicer):
    pipeline: SearchPipeline
    recalls: Recalls
    limits: RequestLimits
    filter_values: FilterValues
    photos: ArticlePhotos
    # Identical requests in flight at once share one run of the pipeline.
    flights: SingleFlight[tuple[str, bytes], Answer] = field(default_factory=SingleFlight)

    async def SearchText(
        self, request: pb.SearchTextRequest, context: grpc.aio.ServicerContext
    ) -> pb.SearchTextResponse:
        return await self._search(request, context, self.recalls.text, pb.SearchTextResponse)

    async def GetArticlePhoto(
        self, request: pb.GetArticlePhotoRequest, context: grpc.aio.ServicerContext
    ) -> httpbody_pb2.HttpBody:
        try:
            article_id = normalise_article_id(request.article_id)
        except ValueError as error:
            await abort_invalid_argument(context, InvalidArgument([FieldViolation("article_id", str(error))]))
        try:
            photo = await self.photos.read(article_id)
        except PhotosUnavailable as error:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(error))
        if photo is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"article {article_id} has no photo in the catalogue")
        # A photo changes only with a catalogue load: browsers and caches may keep it a day.
        await context.send_initial_metadata((("cache-control", PHOTO_CACHE_CONTROL),))
        return httpbody_pb2.HttpBody(content_type="image/jpeg", data=photo)

    async def SearchImage(
        self, request: pb.SearchImageRequest, context: grpc.aio.ServicerContext
    ) -> pb.SearchImageResponse:
        return await self._search(request, context, self.recalls.image, pb.SearchImageResponse, request.image)

    async def SearchHybrid(
        self, request: pb.SearchHybridRequest, context: grpc.aio.ServicerContext
    ) -> pb.SearchHybridResponse:
        photo = request.image or None  # optional here
        return await self._search(request, context, self.recalls.hybrid, pb.SearchHybridResponse, photo)

    async def _search(
        self,
        request: SearchRequest,
        context: grpc.aio.ServicerContext,
        recall: Recall | None,
        response: type[Response],
        image: bytes | None = None,
    ) -> Response:
        if recall is None:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, VISION_OFF)
        assert recall is not None
        try:
            verdict = await self._check_image(image) if image is not None else None
            query = validate_request(request, self.limits, self.filter_values.values, verdict)
        except InvalidArgument as error:
            await abort_invalid_argument(context, error)
        try:
            # Image search has no text to rerank by: its candidates keep CLIP's order.
            key = (response.__name__, request.SerializeToString(deterministic=True))
            answer, shared = await self.flights.run(
                key, lambda: self.pipeline.run(recall, query, rerank_by=query.query)
            )
            if shared:
                SHARED.labels(response.__name__.removesuffix("Response")).inc()
                trace.get_current_span().set_attribute("search.single_flight", "shared")
        except NoAnswer as error:
            log.warning("search failed", extra={"component": error.failed.component, "error": str(error)})
            code = grpc.StatusCode.DEADLINE_EXCEEDED if error.failed.timed_out else grpc.StatusCode.UNAVAILABLE
            await context.abort(code, str(error))
        except DependencyError as error:  # NOT_LOADED: nothing to search in
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"{error}; run `atelier catalog load`")
        for reason in {degradation.reason for degradation in answer.degradations}:
            DEGRADED.labels(reason_label(reason)).inc()
        return response(
            results=answer.results,
            degradations=answer.degradations,
            timings=timings.as_proto(answer.timings),
            rerank_depth=answer.rerank_depth,
        )

    async def _check_image(self, data: bytes) -> CheckedImage | FieldViolation:
        # Decoding is CPU work: off the event loop, which serves every other request.
        return await asyncio.to_thread(check_image, data, self.limits.image)
