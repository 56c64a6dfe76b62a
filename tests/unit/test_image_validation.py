"""Query photo validation: each bad input is refused with a message naming the problem."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from atelier.serving.rpc import FieldViolation
from services.search.image_validation import CheckedImage, ImageLimits, check_image

LIMITS = ImageLimits(max_bytes=200_000, max_pixels=300 * 300)


def encoded(image_format: str, size: tuple[int, int] = (40, 30), mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, (200, 30, 40) if mode == "RGB" else 128).save(buffer, format=image_format)
    return buffer.getvalue()


@pytest.mark.parametrize("image_format", ["JPEG", "PNG", "WEBP"])
def test_accepts_jpeg_png_and_webp(image_format: str) -> None:
    checked = check_image(encoded(image_format), LIMITS)
    assert isinstance(checked, CheckedImage)
    assert (checked.format, checked.width, checked.height) == (image_format, 40, 30)


def test_accepts_grayscale_png() -> None:
    assert isinstance(check_image(encoded("PNG", mode="L"), LIMITS), CheckedImage)


def violation(data: bytes, limits: ImageLimits = LIMITS) -> FieldViolation:
    result = check_image(data, limits, field="image")
    assert isinstance(result, FieldViolation), result
    assert result.field == "image"
    return result


def test_empty() -> None:
    assert "must not be empty" in violation(b"").description


def test_too_large() -> None:
    assert "at most 100 bytes" in violation(encoded("PNG"), ImageLimits(100, LIMITS.max_pixels)).description


def test_not_an_image() -> None:
    assert "not a JPEG, PNG or WebP image" in violation(b"hello, this is text, not a photo").description


@pytest.mark.parametrize("image_format", ["GIF", "BMP", "TIFF"])
def test_other_formats_are_refused(image_format: str) -> None:
    assert "not a JPEG, PNG or WebP image" in violation(encoded(image_format)).description


@pytest.mark.parametrize("image_format", ["JPEG", "PNG"])
def test_truncated(image_format: str) -> None:
    data = encoded(image_format, size=(120, 120))
    assert "could not be decoded" in violation(data[: len(data) // 2]).description


def test_too_many_pixels_is_refused_from_the_header() -> None:
    description = violation(encoded("PNG", size=(400, 300))).description
    assert f"at most {LIMITS.max_pixels} pixels" in description
    assert "400x300" in description


def test_a_strip_is_refused() -> None:
    assert "more elongated than 20:1, got 300x10" in violation(encoded("PNG", size=(300, 10))).description
