"""What a catalogue collection embeds of each article: its text (articles_text) or its photo
(articles_image). The loader is the same for both; only reading and embedding differ.

Each content identifies the served model by what it computes on a fixed probe, so a changed
model re-embeds everything, and hashes each article's content with that fingerprint, so an
unchanged article is skipped on a reload.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from atelier.offline.catalog.schema import Article
from atelier.serving.embedding import TextEmbedder
from atelier.serving.vision import ClipEncoder

FINGERPRINT_PROBE = "atelier model fingerprint: slim fit black jeans"


def _fingerprint(vector: np.ndarray) -> str:
    return hashlib.sha256(np.round(vector, 4).astype(np.float32).tobytes()).hexdigest()[:16]


def content_hash(fingerprint: str, content: str | bytes) -> str:
    data = content.encode() if isinstance(content, str) else content
    return hashlib.sha256(fingerprint.encode() + b"\n" + data).hexdigest()[:32]


class ArticleContent(Protocol):
    """One collection's view of the articles, embedded by one version of its Triton model."""

    # Whether loading this content also writes the articles' metadata to the item store.
    writes_items: bool
    # The Triton model whose versions build the collection.
    model: str

    async def served_versions(self) -> list[int]:
        """The versions of the model Triton has loaded."""

    def use_version(self, version: int) -> None:
        """Embeds with `version` of the model from now on."""

    def read(self, article: Article) -> str | bytes | None:
        """What is embedded of the article; None when it has nothing (no photo)."""

    async def embed(self, contents: Sequence[str | bytes]) -> np.ndarray:
        """[n, dimension] float32, L2-normalised."""

    async def fingerprint(self) -> tuple[str, int]:
        """(fingerprint of the served model, its dimension)."""

    async def close(self) -> None: ...


class TextContent:
    writes_items = True

    def __init__(self, embedder: TextEmbedder) -> None:
        self._embedder = embedder

    @property
    def model(self) -> str:
        return self._embedder.model_name

    async def served_versions(self) -> list[int]:
        return await self._embedder.triton.loaded_versions(self.model, self._embedder.timeout_s)

    def use_version(self, version: int) -> None:
        self._embedder.version = version

    def read(self, article: Article) -> str:
        return article.text()

    async def embed(self, contents: Sequence[str | bytes]) -> np.ndarray:
        return await self._embedder.embed_passages([str(text) for text in contents])

    async def fingerprint(self) -> tuple[str, int]:
        vector = (await self._embedder.embed_passages([FINGERPRINT_PROBE]))[0]
        return _fingerprint(vector), int(vector.shape[0])

    async def close(self) -> None:
        await self._embedder.close()


def probe_image() -> bytes:
    """A fixed small PNG (a dark square on light grey): the image towers' fingerprint input."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (64, 64), (228, 229, 232))
    ImageDraw.Draw(image).rectangle((16, 12, 48, 56), fill=(22, 22, 24))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


class ImageContent:
    """Article photos, read from `image_path(article_id)` (None where the catalogue has no photo).

    A photo that does not decode is left out (and listed in `unreadable`) rather than sent: the
    image model fails a whole request for one bad photo, which would stop the load.
    """

    writes_items = False

    def __init__(self, encoder: ClipEncoder, image_path: ImagePath) -> None:
        self._encoder = encoder
        self._image_path = image_path
        self.unreadable: list[Path] = []

    @property
    def model(self) -> str:
        return self._encoder.image_model

    async def served_versions(self) -> list[int]:
        return await self._encoder.triton.loaded_versions(self.model, self._encoder.timeout_s)

    def use_version(self, version: int) -> None:
        self._encoder.version = version

    def read(self, article: Article) -> bytes | None:
        path = self._image_path(article.article_id)
        if path is None or not path.is_file():
            return None
        data = path.read_bytes()
        if not _decodes(data):
            self.unreadable.append(path)
            return None
        return data

    async def embed(self, contents: Sequence[str | bytes]) -> np.ndarray:
        return await self._encoder.embed_images([bytes(image) for image in contents])  # type: ignore[arg-type]

    async def fingerprint(self) -> tuple[str, int]:
        vector = (await self._encoder.embed_images([probe_image()]))[0]
        return _fingerprint(vector), int(vector.shape[0])

    async def close(self) -> None:
        await self._encoder.close()


def _decodes(data: bytes) -> bool:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
    except Exception:  # noqa: BLE001 - whatever Pillow raises, the photo is unusable
        return False
    return True


class ImagePath(Protocol):
    def __call__(self, article_id: str) -> Path | None: ...
