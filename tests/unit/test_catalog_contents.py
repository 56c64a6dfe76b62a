"""What the catalogue load embeds of an article: its text, or its photo when it has a usable one."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

from atelier.offline.catalog.contents import ImageContent, content_hash, probe_image
from atelier.offline.catalog.schema import Article


def article(article_id: str) -> Article:
    return Article.from_fields(article_id, {"name": "Slim Jeans", "product_type": "Trousers", "colour": "Black"})


def test_photos_are_read_and_broken_or_missing_ones_left_out(tmp_path: Path) -> None:
    good, broken = tmp_path / "good.jpg", tmp_path / "broken.jpg"
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (20, 20, 20)).save(buffer, format="JPEG")
    good.write_bytes(buffer.getvalue())
    broken.write_bytes(buffer.getvalue()[:200])
    paths = {"0100000001": good, "0100000002": broken, "0100000003": tmp_path / "absent.jpg"}
    content = ImageContent(encoder=None, image_path=lambda article_id: paths.get(article_id))  # type: ignore[arg-type]
    assert content.read(article("0100000001")) == good.read_bytes()
    assert content.read(article("0100000002")) is None
    assert content.read(article("0100000003")) is None
    assert content.read(article("0100000004")) is None  # no photo at all
    assert content.unreadable == [broken]


def test_content_hash_keeps_text_hashes_of_earlier_loads_and_changes_with_the_model() -> None:
    import hashlib

    assert content_hash("fp", "black jeans") == hashlib.sha256(b"fp\nblack jeans").hexdigest()[:32]
    assert content_hash("fp", b"\x89PNG") != content_hash("other model", b"\x89PNG")


def test_the_probe_photo_is_a_fixed_png() -> None:
    assert probe_image() == probe_image() and probe_image().startswith(b"\x89PNG")
