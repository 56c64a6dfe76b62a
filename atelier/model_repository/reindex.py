"""Re-embedding the catalogue with one version of an embedding model, into that version's own collection.

The catalogue is the one `atelier catalog load` last loaded (its files are recorded in Redis).
The load is the catalogue load's own: a progress bar, and resumable (each row keeps a hash of the
model's fingerprint and its content, so a re-index cut short embeds only what is missing).
"""

from __future__ import annotations

from atelier.model_repository.repository import Family
from atelier.offline.catalog.bootstrap import LoadResult, LoadSettings, NoCatalogue, load_articles, recorded_catalogue
from atelier.offline.catalog.contents import ArticleContent, ImageContent, TextContent
from atelier.offline.catalog.hm_loader import HMDataset, LoadReport, iter_articles
from atelier.serving.article_index import IndexSettings
from atelier.serving.embedding import TextEmbedder
from atelier.serving.settings import Endpoints
from atelier.serving.vision import ClipEncoder


def _content(
    family: Family, version: int, endpoints: Endpoints, dataset: HMDataset, timeout_s: float
) -> ArticleContent:
    if family.name == "text_embedding":
        return TextContent(TextEmbedder(endpoints.triton_address, timeout_s=timeout_s, version=version))
    if dataset.images is None:
        raise NoCatalogue(f"the catalogue at {dataset.directory} has no photos to embed")
    return ImageContent(ClipEncoder(endpoints.triton_address, timeout_s=timeout_s, version=version), dataset.image_path)


async def reindex(family: Family, version: int, endpoints: Endpoints) -> LoadResult:
    """Fills the collection `version` of `family` builds for its alias; the alias is left as it is."""
    assert family.collection is not None
    dataset = recorded_catalogue(endpoints)
    settings = LoadSettings(index=IndexSettings(collection=family.collection))
    content = _content(family, version, endpoints, dataset, settings.embed_timeout_s)
    with dataset.articles.open(encoding="utf-8", errors="replace") as lines:
        total = sum(1 for _ in lines) - 1
    articles = iter_articles(dataset.articles, LoadReport())
    return await load_articles(articles, total, endpoints, settings, content, version=version, switch_alias=False)
