"""The search service: `python -m services.search`."""

from __future__ import annotations

import grpc
import numpy as np
from pymilvus import AsyncMilvusClient

from atelier.serving.circuit_breaker import CircuitBreaker
from atelier.serving.embedding import TextEmbedder
from atelier.serving.grpc_server import ServiceSpec, run
from atelier.serving.reranking import Reranker
from atelier.serving.vision import ClipEncoder
from fashion.v1 import events_service_pb2, features_service_pb2, search_service_pb2
from fashion.v1 import search_service_pb2_grpc as pb_grpc
from services.search.config import SearchSettings
from services.search.fallback import PopularFallback
from services.search.filter_values import FilterValues
from services.search.personalisation import Personaliser
from services.search.rerank import RerankStage
from services.search.servicer import SearchServicer
from services.search.text_search import TextSearch
from services.search.vision_search import VisionSearch

SERVICE_NAME = search_service_pb2.DESCRIPTOR.services_by_name["SearchService"].full_name
# Envoy sends reflection to this service, the edge's default route, so it
# describes every public service, wherever that service runs.
PUBLIC_SERVICES = (
    features_service_pb2.DESCRIPTOR.services_by_name["FeaturesService"].full_name,
    events_service_pb2.DESCRIPTOR.services_by_name["EventsService"].full_name,
)


class SearchApp:
    """Owns the service's clients: created in the server's event loop, closed when it stops."""

    def __init__(self, settings: SearchSettings) -> None:
        self.settings = settings
        self.filter_values = FilterValues(settings.endpoints.redis_url, settings.filter_values_refresh_s)
        self.embedder: TextEmbedder | None = None
        self.reranker: Reranker | None = None
        self.clip: ClipEncoder | None = None
        self.milvus: AsyncMilvusClient | None = None
        self.personaliser: Personaliser | None = None
        self.fallback: PopularFallback | None = None

    async def start(self) -> None:
        endpoints = self.settings.endpoints
        self.embedder = TextEmbedder(endpoints.triton_address, self.settings.text_model, self.settings.embed_timeout_s)
        if self.settings.rerank_enabled:
            settings = self.settings
            self.reranker = Reranker(endpoints.triton_address, settings.rerank_model, settings.rerank_budget_s)
        if self.settings.vision_enabled:
            settings = self.settings
            self.clip = ClipEncoder(
                endpoints.triton_address, settings.clip_image_model, settings.clip_text_model, settings.clip_timeout_s
            )
        self.milvus = AsyncMilvusClient(uri=endpoints.milvus_uri)
        self.personaliser = Personaliser(
            endpoints.features_address,
            endpoints.ranker_address,
            self.settings.personalisation_timeout_s,
            self.settings.breaker,
        )
        self.fallback = PopularFallback(endpoints.features_address, self.settings.personalisation_timeout_s)
        await self.filter_values.start()
        await self.fallback.warm()

    def register(self, server: grpc.aio.Server) -> list[str]:
        assert self.embedder and self.milvus and self.personaliser and self.fallback, "start() first"
        embedder = self.embedder

        triton_breaker = CircuitBreaker("triton", self.settings.breaker)

        async def embed_query(query: str) -> np.ndarray:
            triton_breaker.check()
            try:
                vector = (await embedder.embed_queries([query]))[0]
            except Exception:
                triton_breaker.record(False)
                raise
            triton_breaker.record(True)
            return vector

        milvus_breaker = CircuitBreaker("milvus", self.settings.breaker)
        rerank = None
        if self.reranker is not None:
            rerank = RerankStage(
                self.reranker,
                self.settings.rerank_candidates,
                self.settings.rerank_budget_s,
                CircuitBreaker("reranker", self.settings.breaker),
                self.settings.rerank_cache_size,
                self.settings.rerank_max_in_flight,
            )
        text_search = TextSearch(self.settings, embed_query, self.milvus, self.personaliser, milvus_breaker, rerank)
        vision_search = None
        if self.clip is not None:
            vision_search = VisionSearch(
                self.settings, text_search, self.clip, CircuitBreaker("clip", self.settings.breaker)
            )
        servicer = SearchServicer(self.settings, text_search, self.filter_values, self.fallback, vision_search)
        pb_grpc.add_SearchServiceServicer_to_server(servicer, server)
        return [SERVICE_NAME]

    async def stop(self) -> None:
        await self.filter_values.stop()
        if self.embedder is not None:
            await self.embedder.close()
        if self.reranker is not None:
            await self.reranker.close()
        if self.clip is not None:
            await self.clip.close()
        if self.milvus is not None:
            await self.milvus.close()
        if self.personaliser is not None:
            await self.personaliser.close()
        if self.fallback is not None:
            await self.fallback.close()


def main() -> None:
    settings = SearchSettings.from_env()
    app = SearchApp(settings)
    endpoints = settings.endpoints
    run(
        ServiceSpec(
            name="search",
            host=endpoints.listen_host,
            port=endpoints.search_port,
            metrics_port=endpoints.search_metrics_port,
            register=app.register,
            reflected_services=PUBLIC_SERVICES,
            on_start=[app.start],
            on_stop=[app.stop],
        )
    )


if __name__ == "__main__":
    main()
