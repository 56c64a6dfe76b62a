"""Validation of query photos: a size limit, then a real decode (format, pixel count, truncation).

A photo is accepted only when Pillow decodes it whole as JPEG, PNG or WebP; the pixel count
is checked from the header before decoding, so an image bomb is refused without being expanded.
Decoding is CPU work: callers run `check_image` in a thread.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from atelier.serving.rpc import FieldViolation

FORMATS = frozenset({"JPEG", "PNG", "WEBP"})
# CLIP's processor scales the short side to its input size: a 1x10000 strip would become a huge
# array (the clip_image model refuses beyond this too).
MAX_ASPECT_RATIO = 20


@dataclass(frozen=True)
class ImageLimits:
    max_bytes: int
    max_pixels: int


@dataclass(frozen=True)
class CheckedImage:
    data: bytes
    format: str
    width: int
    height: int


def check_image(data: bytes, limits: ImageLimits, field: str = "image") -> CheckedImage | FieldViolation:
    """The decoded photo's facts, or the violation that names what is wrong with it."""
    if not data:
        return FieldViolation(field, "must not be empty: send JPEG, PNG or WebP bytes (base64 in REST JSON)")
    if len(data) > limits.max_bytes:
        return FieldViolation(field, f"must be at most {limits.max_bytes} bytes, got {len(data)}")
    try:
        with warnings.catch_warnings():
            # Pillow warns (DecompressionBombWarning) and raises at twice its own limit; ours is checked below.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=sorted(FORMATS)) as image:
                width, height = image.size
                if width * height > limits.max_pixels:
                    return FieldViolation(field, f"must have at most {limits.max_pixels} pixels, got {width}x{height}")
                image_format = image.format or ""
                image.load()
    except UnidentifiedImageError:
        return FieldViolation(field, "is not a JPEG, PNG or WebP image")
    except Image.DecompressionBombError:
        return FieldViolation(field, f"must have at most {limits.max_pixels} pixels")
    except (OSError, SyntaxError, ValueError) as error:
        return FieldViolation(field, f"could not be decoded (truncated or corrupt): {error}")
    if width < 1 or height < 1:
        return FieldViolation(field, "has no pixels")
    if max(width, height) > MAX_ASPECT_RATIO * min(width, height):
        return FieldViolation(field, f"must not be more elongated than {MAX_ASPECT_RATIO}:1, got {width}x{height}")
    return CheckedImage(data, image_format, width, height)
