"""Client of the Triton CLIP encoders (atelier/inference/clip_image.py, atelier/inference/clip_text.py).

Both towers write into one vector space: an image's embedding and a text's embedding compare
by inner product (each is L2-normalised). Used by search (query photos and query texts) and by
the catalogue load (article photos).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from atelier.inference.signatures import CLIP_IMAGE, CLIP_TEXT, EMBEDDING, IMAGE, TEXT
from atelier.serving.triton_client import ModelAdapter, TritonClient, strings

IMAGE_MODEL = CLIP_IMAGE.model
TEXT_MODEL = CLIP_TEXT.model


class ClipEncoder(ModelAdapter):
    def __init__(
        self,
        triton: TritonClient | str,
        image_model: str = IMAGE_MODEL,
        text_model: str = TEXT_MODEL,
        timeout_s: float = 5.0,
        version: int | None = None,
    ) -> None:
        """``version``: the version of both towers every call uses (None: Triton's choice) unless a call
        names its own; the towers are published together, under one version number."""
        super().__init__(triton, timeout_s)
        self.image_model = image_model
        self.text_model = text_model
        self.version = version

    async def embed_images(
        self, images: Sequence[bytes], timeout_s: float | None = None, version: int | None = None
    ) -> np.ndarray:
        """[len(images), dimension] float32, L2-normalised; ``images`` are encoded files (JPEG, PNG, WebP)."""
        return await self._infer(self.image_model, IMAGE, list(images), timeout_s, version)

    async def embed_texts(
        self, texts: Sequence[str], timeout_s: float | None = None, version: int | None = None
    ) -> np.ndarray:
        """[len(texts), dimension] float32, L2-normalised, in the images' space."""
        if isinstance(texts, str):
            raise TypeError("texts must be a sequence of strings, not one string")
        return await self._infer(self.text_model, TEXT, list(texts), timeout_s, version)

    async def _infer(
        self, model: str, name: str, values: list[bytes] | list[str], timeout_s: float | None, version: int | None
    ) -> np.ndarray:
        if not values:
            raise ValueError("nothing to embed")
        inputs = {name: strings(values)}
        timeout_s = timeout_s or self.timeout_s
        embeddings = (await self.triton.infer(model, inputs, [EMBEDDING], timeout_s, version or self.version))[
            EMBEDDING
        ]
        if embeddings.ndim != 2:
            raise RuntimeError(f"{model} returned EMBEDDING of shape {embeddings.shape}")
        return embeddings.astype(np.float32, copy=False)
