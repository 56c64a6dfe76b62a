"""Article photos from the catalogue's recorded folder: a file, none, or no folder to read at all."""

from __future__ import annotations

from pathlib import Path

import pytest

from atelier.serving.settings import Endpoints
from services.search.photos import ArticlePhotos, PhotosUnavailable


def _photos(folder: Path | None) -> ArticlePhotos:
    photos = ArticlePhotos(Endpoints.from_env({}), refresh_s=60)

    async def recorded() -> Path | None:
        return folder

    photos.folder = recorded  # type: ignore[method-assign]
    return photos


async def test_a_photo_is_read_from_its_subfolder_by_the_normalised_id(tmp_path: Path) -> None:
    (tmp_path / "010").mkdir()
    (tmp_path / "010" / "0108775015.jpg").write_bytes(b"\xff\xd8jpeg")
    photos = _photos(tmp_path)
    assert await photos.read("0108775015") == b"\xff\xd8jpeg"
    assert await photos.read("108775015") == b"\xff\xd8jpeg"
    assert await photos.read("0108775016") is None


async def test_no_folder_recorded_or_mounted_says_so(tmp_path: Path) -> None:
    with pytest.raises(PhotosUnavailable, match="catalog load"):
        await _photos(None).read("0108775015")
    with pytest.raises(PhotosUnavailable, match="not mounted"):
        await _photos(tmp_path / "elsewhere").read("0108775015")
