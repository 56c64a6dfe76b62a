"""Async client of the Triton CLIP encoders (triton_models/clip_image, triton_models/clip_text).

Both towers write into one vector space: an image's embedding and a text's embedding compare
by inner product (each is L2-normalised). Used by search (query photos and query texts) and by
the catalogue load (article photos). Every call carries a deadline.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tritonclient.grpc.aio as triton_aio
from tritonclient.grpc import InferInput, InferRequestedOutput

from atelier.serving.embedding import CHANNEL_ARGS

IMAGE_MODEL = "clip_image"
TEXT_MODEL = "clip_text"


class ClipEncoder:
    def __init__(
        self,
        url: str,
        image_model: str = IMAGE_MODEL,
        text_model: str = TEXT_MODEL,
        timeout_s: float = 5.0,
    ) -> None:
        """``url`` is Triton's gRPC ``host:port``."""
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s}")
        self.url = url
        self.image_model = image_model
        self.text_model = text_model
        self.timeout_s = timeout_s
        self._client: triton_aio.InferenceServerClient | None = None  # made in the loop that uses it

    def _get_client(self) -> triton_aio.InferenceServerClient:
        if self._client is None:
            self._client = triton_aio.InferenceServerClient(self.url, channel_args=CHANNEL_ARGS)
        return self._client

    async def embed_images(self, images: Sequence[bytes], timeout_s: float | None = None) -> np.ndarray:
        """[len(images), dimension] float32, L2-normalised; ``images`` are encoded files (JPEG, PNG, WebP)."""
        return await self._infer(self.image_model, "IMAGE", list(images), timeout_s)

    async def embed_texts(self, texts: Sequence[str], timeout_s: float | None = None) -> np.ndarray:
        """[len(texts), dimension] float32, L2-normalised, in the images' space."""
        if isinstance(texts, str):
            raise TypeError("texts must be a sequence of strings, not one string")
        return await self._infer(self.text_model, "TEXT", [text.encode("utf-8") for text in texts], timeout_s)

    async def _infer(self, model: str, name: str, values: list[bytes], timeout_s: float | None) -> np.ndarray:
        n = len(values)
        if n == 0:
            raise ValueError("nothing to embed")
        tensor = InferInput(name, [n, 1], "BYTES")
        tensor.set_data_from_numpy(np.array(values, dtype=np.object_).reshape(n, 1))
        result = await self._get_client().infer(
            model,
            [tensor],
            outputs=[InferRequestedOutput("EMBEDDING")],
            client_timeout=timeout_s or self.timeout_s,
        )
        embeddings = result.as_numpy("EMBEDDING")
        if embeddings is None or embeddings.ndim != 2 or embeddings.shape[0] != n:
            shape = None if embeddings is None else embeddings.shape
            raise RuntimeError(f"{model} returned EMBEDDING of shape {shape} for {n} inputs")
        return embeddings.astype(np.float32, copy=False)

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.close()
