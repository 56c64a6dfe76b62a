"""Settings of the search service (SEARCH_*, VISION_ENABLED, and the shared ATELIER_* ones)."""

from __future__ import annotations

from pydantic import Field, NonNegativeInt, PositiveFloat, PositiveInt

from atelier.serving.circuit_breaker import BreakerSettings
from atelier.serving.settings import ExplanationSettings, ServiceSettings, Settings, Vision
from services.search.image_validation import ImageLimits


class RequestLimits(Settings, env_prefix="SEARCH_"):
    """What a search request may ask for."""

    default_k: PositiveInt = 10
    """Results when a request leaves k at 0."""
    max_k: PositiveInt = 100
    """Most results a request may ask for."""
    max_explain_top: PositiveInt = 10
    """Most results a request may ask to have explained (explain_top)."""
    max_query_chars: PositiveInt = 512
    """Longest query text accepted (after white space is folded)."""
    max_image_bytes: PositiveInt = 4 * 1024 * 1024
    """Largest query photo accepted, in bytes."""
    max_image_pixels: PositiveInt = 25_000_000
    """Most pixels a query photo may have."""

    @property
    def image(self) -> ImageLimits:
        return ImageLimits(self.max_image_bytes, self.max_image_pixels)


class Deadlines(Settings, env_prefix="SEARCH_"):
    """How long search waits on each downstream before it answers without it."""

    embed_timeout_s: PositiveFloat = 1.0
    """Deadline of the query embedding (Triton text_embedding)."""
    ann_timeout_s: PositiveFloat = 0.5
    """Deadline of one Milvus search."""
    clip_timeout_s: PositiveFloat = 1.0
    """Deadline of a CLIP embedding (query photo or query text)."""
    personalisation_timeout_s: PositiveFloat = 0.2
    """Deadline of each call to the features service and the ranker."""


class RerankSettings(Settings, env_prefix="SEARCH_RERANK_"):
    """The cross-encoder stage."""

    enabled: bool = True
    """Cross-encoder reranking (while Triton has no reranker ready, answers keep retrieval order and say so)."""
    candidates: PositiveInt = 100
    """Full depth: the retrieved candidates the cross-encoder reorders when it has room."""
    min_depth: PositiveInt = 20
    """Fewest candidates worth reranking: when the load leaves room for fewer, the answer keeps retrieval
    order at once (shed; never counted against the reranker's breaker)."""
    budget_s: PositiveFloat = 0.3
    """Deadline of the rerank call; past it, the answer keeps retrieval order and says so."""
    planned_share: float = Field(0.8, gt=0, le=1)
    """Share of the budget a search plans its rerank depth to fit in, given the pairs in flight and the
    measured cost of a pair (the rest absorbs the estimate's error)."""
    target_utilisation: float = Field(0.8, gt=0, le=1)
    """Share of the reranker's pairs a second (1 / measured cost of a pair) that searches plan to use
    between them once they compete for it (they ask faster than it scores full depth, most arrive with
    pairs in flight, and the budget cannot hold full depth and the next floor): each takes at most this over
    their arrival rate (at least the floor), so that a burst's first search does not take what the
    next ones need."""
    cache_size: NonNegativeInt = 100_000
    """(query, article) rerank scores kept in memory (0: none)."""


class HybridWeights(Settings, env_prefix="SEARCH_HYBRID_"):
    """Hybrid search's merge: each recall list's weight, its scores min-max normalised first."""

    text_weight: float = Field(0.5, ge=0)
    """The query text in the text collection."""
    clip_text_weight: float = Field(0.2, ge=0)
    """The query text through CLIP against the photos."""
    image_weight: float = Field(0.3, ge=0)
    """The query photo against the photos."""


class AnnSettings(Settings, env_prefix="SEARCH_"):
    """Retrieval from Milvus."""

    collection: str = "articles_text"
    """Milvus alias (or collection) of the articles' text embeddings."""
    image_collection: str = "articles_image"
    """Milvus alias (or collection) of the articles' photo embeddings (CLIP)."""
    index_refresh_s: PositiveFloat = 2.0
    """How often search re-reads which collection each alias names and the model version that built it."""
    candidates: PositiveInt = 100
    """Candidates retrieved from Milvus per request (later stages rerank and boost them)."""
    hnsw_ef: PositiveInt = 128
    """HNSW search width (at least the number of candidates asked for)."""


class SearchSettings(ServiceSettings, env_prefix="SEARCH_"):
    breaker: BreakerSettings = Field(default_factory=BreakerSettings)
    vision: Vision = Field(default_factory=Vision)
    limits: RequestLimits = Field(default_factory=RequestLimits)
    deadlines: Deadlines = Field(default_factory=Deadlines)
    rerank: RerankSettings = Field(default_factory=RerankSettings)
    explanations: ExplanationSettings = Field(default_factory=ExplanationSettings)
    hybrid: HybridWeights = Field(default_factory=HybridWeights)
    ann: AnnSettings = Field(default_factory=AnnSettings)
    embedding_cache_size: NonNegativeInt = 10_000
    """Query embeddings kept in memory (0: none)."""
    filter_values_refresh_s: PositiveFloat = 30.0
    """How often the catalogue's known filter values are re-read from Redis."""
    model_readiness_interval_s: PositiveFloat = 2.0
    """How often Triton is asked whether the reranker and CLIP models are ready: a stage whose model is
    not (still being trained or published) is skipped and said so, and comes on once it is."""
