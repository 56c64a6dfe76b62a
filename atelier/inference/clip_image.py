"""The clip_image model: encoded images in, L2-normalised CLIP image embeddings out.

Any CLIP checkpoint of a local directory: openai/clip-vit-base-patch32 in production (a full
CLIPModel: only its vision tower and projection are loaded), or the one `atelier models
train-clip` writes. Images are preprocessed by the checkpoint's own image processor
(preprocessor_config.json: resize, centre crop, normalisation), so the input size and
statistics always match the weights. The vector's length is the checkpoint's projection_dim,
the same as clip_text's for the same checkpoint: both embed into one space.

One forward pass per ``execute()`` over every image of every request of the dynamic batch. An
IMAGE row that is not a JPEG, PNG or WebP image (or is absurdly large or elongated) fails its own
request with INVALID_ARG; the other requests of the batch are answered.

Settings (``ClipImageSettings``, atelier/inference/settings.py), read once at load: the
environment variable wins, then the config.pbtxt parameter (the variable's name without
``ATELIER_``, lower case), then the default.

  ATELIER_CLIP_MODEL_DIR          clip_model_dir          local CLIP checkpoint directory (required;
                                                          shared with clip_text)
  ATELIER_CLIP_IMAGE_NUM_THREADS  clip_image_num_threads  torch intra-op threads per instance (default 2)
  ATELIER_CLIP_IMAGE_PRECISION    clip_image_precision    fp16 | fp32 | auto (default auto: fp16 on a
                                                          GPU instance, fp32 on CPU)

A version folder's settings.json and checkpoint/ win over all of these (settings.py). The model
runs on the device of its instance group (KIND_GPU: CUDA) in its precision; the processor's pixels
are cast to it and the embeddings normalised in fp32 (atelier/inference/triton_model.py).

The pure helpers (``decode_image``, ``ImageEncoder``) do not need Triton: unit tests and the
training code import this module, and training decodes its images with ``decode_image`` and
preprocesses them as ``ImageEncoder`` does.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from atelier.inference.clip_config import load_clip_tower
from atelier.inference.request_batch import input_column
from atelier.inference.settings import ClipImageSettings, required_checkpoint_dir
from atelier.inference.settings import SettingsError as SettingsError  # re-exported: tests catch it here
from atelier.inference.signatures import CLIP_IMAGE, EMBEDDING, IMAGE
from atelier.inference.triton_model import CPU, TritonModel, l2_normalise, model_dtype, place

MODEL_DIR_HELP = (
    "run `atelier models train-clip`, or point it at a local CLIP checkpoint directory with its "
    "preprocessor_config.json, e.g. a copy of openai/clip-vit-base-patch32 (weights are never downloaded)"
)
ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP")
FORMAT_NAMES = "JPEG, PNG or WebP"
# Guards against images that would blow up memory: the processor resizes the shortest side to
# its input size, so a 1x10000 strip would become a huge array before the crop.
MAX_PIXELS = 40_000_000
MAX_ASPECT_RATIO = 20


def resolve_model_dir(settings: ClipImageSettings) -> Path:
    """The checkpoint directory to load, checked to hold a config and an image processor."""
    return required_checkpoint_dir(settings, MODEL_DIR_HELP, tokenizer=False, files=("preprocessor_config.json",))


def decode_image(data: bytes, row: int = 0) -> Any:
    """The RGB PIL image encoded in ``data`` (JPEG, PNG or WebP), upright per its EXIF orientation.

    A ValueError names the IMAGE row when ``data`` is not such an image, is broken, or is too
    large or elongated to process.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        image = Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
    except UnidentifiedImageError:
        raise ValueError(f"{IMAGE} row {row} is not a {FORMAT_NAMES} image ({len(data)} bytes)") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ValueError(f"{IMAGE} row {row} is not a readable image: {exc}") from None
    width, height = image.size
    if width * height > MAX_PIXELS:
        raise ValueError(f"{IMAGE} row {row} has {width}x{height} pixels, more than {MAX_PIXELS}")
    if max(width, height) > MAX_ASPECT_RATIO * min(width, height):
        raise ValueError(f"{IMAGE} row {row} is {width}x{height} pixels, more elongated than {MAX_ASPECT_RATIO}:1")
    try:
        return ImageOps.exif_transpose(image).convert("RGB")
    except (OSError, SyntaxError, ValueError) as exc:  # truncated or corrupt image data
        raise ValueError(f"{IMAGE} row {row} is a broken {image.format} image: {exc}") from None


def load_image_processor(model_dir: Path) -> Any:
    """The checkpoint's own image processor (the slow, PIL-based one, as training uses it)."""
    from transformers import AutoImageProcessor

    # use_fast=False: the torchvision-based fast processor resizes slightly differently.
    return AutoImageProcessor.from_pretrained(model_dir, local_files_only=True, use_fast=False)


class ImageEncoder:
    """A CLIP checkpoint's vision tower, projection and image processor, on ``device`` in the settings'
    precision; no Triton involved."""

    def __init__(self, settings: ClipImageSettings, device: torch.device | str = CPU) -> None:
        self.settings = settings
        self.model_dir = resolve_model_dir(settings)  # before the slow import: fail fast
        self.device = torch.device(device)
        self.dtype = model_dtype(settings.image_precision, self.device)
        model, self.processor = load_clip_tower(self.model_dir, "vision", load_image_processor)
        self.model = place(model, self.device, self.dtype)
        self.dimension: int = self.model.config.projection_dim

    def pixels(self, images: Sequence[Any]) -> torch.Tensor:
        """[n, 3, size, size] float32 model input of RGB PIL images, by the checkpoint's processor."""
        return self.processor(images=list(images), return_tensors="pt")["pixel_values"]

    def encode(self, images: Sequence[Any]) -> np.ndarray:
        """[len(images), dimension] float32, L2-normalised; one forward pass."""
        if not images:
            return np.empty((0, self.dimension), dtype=np.float32)
        pixels = self.pixels(images).to(self.device, self.dtype)
        with torch.inference_mode():
            vectors = l2_normalise(self.model(pixel_values=pixels).image_embeds.float())
        return vectors.cpu().numpy()

    def encode_bytes(self, encoded: Sequence[bytes]) -> np.ndarray:
        """``encode`` of encoded images, as the IMAGE input carries them."""
        return self.encode([decode_image(data, row) for row, data in enumerate(encoded)])


class TritonPythonModel(TritonModel):
    signature = CLIP_IMAGE
    settings_class = ClipImageSettings
    encoder_class = ImageEncoder
    threads_setting = "image_num_threads"

    def describe(self, settings: ClipImageSettings) -> str:
        return (
            f"{type(self.encoder.model).__name__}, dim {self.encoder.dimension}, "
            f"input {self.encoder.processor.crop_size}, {settings.image_num_threads} thread(s)"
        )

    @staticmethod
    def decode(request: Any) -> list[Any]:
        return [decode_image(value, row) for row, value in enumerate(input_column(request, IMAGE))]

    def compute(self, rows: Sequence[Any]) -> dict[str, np.ndarray]:
        return {EMBEDDING: self.encoder.encode(rows)}
