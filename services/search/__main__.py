"""The search service: `python -m services.search`. Wires its parts together, nothing more."""

from __future__ import annotations

from contextlib import AsyncExitStack

import grpc
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2
from pymilvus import AsyncMilvusClient

from atelier.edge.public_api import public_pool
from atelier.inference.signatures import CLIP_IMAGE, CLIP_TEXT, EXPLAINER, RERANKER
from atelier.serving.channels import insecure_channel
from atelier.serving.dependency import Dependency
from atelier.serving.embedding import TextEmbedder
from atelier.serving.explaining import Explainer
from atelier.serving.grpc_server import REQUEST_HEADROOM_BYTES, serve
from atelier.serving.model_readiness import ModelReadiness
from atelier.serving.reranking import Reranker
from atelier.serving.triton_client import TritonClient
from atelier.serving.vision import ClipEncoder
from fashion.v1 import events_service_pb2, features_service_pb2, search_service_pb2
from fashion.v1 import features_service_pb2_grpc as features_grpc
from fashion.v1 import ranker_service_pb2_grpc as ranker_grpc
from fashion.v1 import search_service_pb2_grpc as pb_grpc
from services.search.config import SearchSettings
from services.search.fallback import PopularFallback
from services.search.filter_values import FilterValues
from services.search.generated_explanations import GeneratedExplanations
from services.search.index_bindings import IndexBindings
from services.search.personalisation import Personaliser
from services.search.photos import ArticlePhotos
from services.search.pipeline import SearchPipeline
from services.search.recall import ClipTextRecall, HybridRecall, ImageRecall, Recalls, Retrieval, Side, TextRecall
from services.search.rerank import RerankStage
from services.search.rerank_load import RerankLoad
from services.search.servicer import SearchServicer

SERVICE_NAME = search_service_pb2.DESCRIPTOR.services_by_name["SearchService"].full_name
# Envoy sends reflection to this service, so it describes every public service, wherever that
# service runs, and only what the edge routes (no RankerService, no BatchGetItemSignals).
PUBLIC_POOL, PUBLIC_SERVICES = public_pool(
    [search_service_pb2.DESCRIPTOR, features_service_pb2.DESCRIPTOR, events_service_pb2.DESCRIPTOR],
    whole=[health_pb2.DESCRIPTOR, reflection_pb2.DESCRIPTOR],
)


async def build(settings: SearchSettings, server: grpc.aio.Server, resources: AsyncExitStack) -> list[str]:
    endpoints, breaker, deadlines = settings.endpoints, settings.breaker, settings.deadlines

    # Connections, closed in reverse order when the server stops.
    triton = TritonClient(endpoints.triton_address)
    resources.push_async_callback(triton.close)
    milvus = AsyncMilvusClient(uri=endpoints.milvus_uri)
    resources.push_async_callback(milvus.close)
    features_channel = insecure_channel(endpoints.features_address)
    resources.push_async_callback(features_channel.close)
    ranker_channel = insecure_channel(endpoints.ranker_address)
    resources.push_async_callback(ranker_channel.close)

    # The models search waits for (being trained or published): a stage comes on when its model is ready.
    generating = settings.explanations.mode == "llm"
    watched = (
        [RERANKER.model] * settings.rerank.enabled
        + [CLIP_IMAGE.model, CLIP_TEXT.model] * settings.vision.enabled
        + [EXPLAINER.model] * generating
    )
    readiness = ModelReadiness(triton, watched, settings.model_readiness_interval_s)
    await readiness.start()
    resources.push_async_callback(readiness.stop)

    # The collection each alias names, and the model version that built it: queries are embedded by that version.
    aliases = [settings.ann.collection] + [settings.ann.image_collection] * settings.vision.enabled
    indexes = IndexBindings(milvus, aliases, settings.ann.index_refresh_s, deadlines.ann_timeout_s)
    await indexes.start()
    resources.push_async_callback(indexes.stop)

    def vision_ready() -> bool:
        """Both CLIP towers ready, and the photos' collection there to search."""
        towers = readiness.ready(CLIP_IMAGE.model) and readiness.ready(CLIP_TEXT.model)
        return towers and indexes.exists(settings.ann.image_collection)

    # Every downstream behind its breaker and deadline.
    text_model = Dependency("triton", breaker, deadlines.embed_timeout_s)
    retrieval = Retrieval(milvus, Dependency("milvus", breaker, deadlines.ann_timeout_s), settings.ann.hnsw_ef)
    features = Dependency("features", breaker, deadlines.personalisation_timeout_s, features_channel)
    ranker = Dependency("ranker", breaker, deadlines.personalisation_timeout_s, ranker_channel)
    features_stub = features_grpc.FeaturesServiceStub(features_channel)

    # Recall, one strategy per RPC.
    text = TextRecall(
        TextEmbedder(triton), text_model, retrieval, indexes, settings.ann.collection, settings.embedding_cache_size
    )
    recalls = Recalls(text)
    if settings.vision.enabled:
        clip = ClipEncoder(triton)
        clip_model = Dependency(
            "clip",
            breaker,
            deadlines.clip_timeout_s,
            ready=vision_ready,
        )
        image = ImageRecall(clip, clip_model, retrieval, indexes, settings.ann.image_collection)
        clip_text = ClipTextRecall(clip, clip_model, retrieval, indexes, settings.ann.image_collection)
        hybrid = HybridRecall(
            [
                Side("text", text, settings.hybrid.text_weight),
                Side("clip_text", clip_text, settings.hybrid.clip_text_weight),
                Side("image", image, settings.hybrid.image_weight, needs_image=True),
            ]
        )
        recalls = Recalls(text, image, hybrid)

    # The stages after recall, and the answer when recall fails.
    rerank = None
    if settings.rerank.enabled:
        rerank = RerankStage(
            Reranker(triton),
            Dependency("reranker", breaker, settings.rerank.budget_s, ready=lambda: readiness.ready(RERANKER.model)),
            settings.rerank.candidates,
            settings.rerank.cache_size,
            settings.rerank.min_depth,
            settings.rerank.planned_share,
            version=lambda: readiness.version(RERANKER.model),
            load=RerankLoad(utilisation=settings.rerank.target_utilisation),
            serving=lambda: readiness.serving(RERANKER.model),
        )
    filter_values = FilterValues(endpoints, settings.filter_values_refresh_s)
    await filter_values.start()
    resources.push_async_callback(filter_values.stop)

    generated = None
    if generating:
        explaining = settings.explanations
        generated = GeneratedExplanations(
            Explainer(triton),
            Dependency("explainer", breaker, explaining.budget_s, ready=lambda: readiness.ready(EXPLAINER.model)),
            lambda: filter_values.values,
            explaining.max_generated,
            explaining.max_in_flight,
        )
    personaliser = Personaliser(features_stub, features, ranker_grpc.RankerServiceStub(ranker_channel), ranker)
    fallback = PopularFallback(features_stub, features)
    await fallback.warm()
    pipeline = SearchPipeline(personaliser, fallback, settings.ann.candidates, rerank, generated)

    photos = ArticlePhotos(endpoints, settings.filter_values_refresh_s)
    resources.push_async_callback(photos.close)
    servicer = SearchServicer(pipeline, recalls, settings.limits, filter_values, photos)
    pb_grpc.add_SearchServiceServicer_to_server(servicer, server)
    return [SERVICE_NAME]


def main() -> None:
    settings = SearchSettings.from_env()
    # A request carries at most one photo: the size limit follows the photo limit.
    max_request_bytes = settings.limits.max_image_bytes + REQUEST_HEADROOM_BYTES
    serve(
        "search",
        settings,
        build,
        reflected_services=PUBLIC_SERVICES,
        reflection_pool=PUBLIC_POOL,
        max_request_bytes=max_request_bytes,
    )


if __name__ == "__main__":
    main()
