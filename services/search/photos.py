"""Article photos, from the folder the last catalogue load recorded (catalog:meta `images_path`): images/0XX/
0XXXXXXXXX.jpg, in every deployment wherever the catalogue's files are mounted (the search container mounts
them read-only at the path the load recorded)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import redis.asyncio as aioredis

from atelier.offline.catalog.hm_loader import photo_path
from atelier.serving import redis_clients
from atelier.serving.item_store import CATALOG_META_KEY, IMAGES_PATH
from atelier.serving.settings import Endpoints

MAX_PHOTO_BYTES = 8 * 1024 * 1024


class PhotosUnavailable(RuntimeError):
    """No photo can be read here: no catalogue load recorded a photos folder, or it is not mounted."""


class ArticlePhotos:
    def __init__(self, endpoints: Endpoints, refresh_s: float) -> None:
        self._client = redis_clients.async_client(
            endpoints, decode_responses=True, socket_timeout=1.0, socket_connect_timeout=1.0
        )
        self._refresh_s = refresh_s
        self._folder: Path | None = None
        self._read_at = float("-inf")

    async def folder(self) -> Path | None:
        """The catalogue's images folder, re-read from Redis at most every `refresh_s`."""
        if time.monotonic() - self._read_at >= self._refresh_s:
            try:
                recorded = await self._client.hget(CATALOG_META_KEY, IMAGES_PATH)
            except (aioredis.RedisError, OSError):
                return self._folder  # the last one known
            self._folder, self._read_at = (Path(recorded) if recorded else None), time.monotonic()
        return self._folder

    async def read(self, article_id: str) -> bytes | None:
        """The article's photo (`article_id` normalised), or None when the catalogue has none for it;
        PhotosUnavailable when no photo can be read here at all."""
        folder = await self.folder()
        if folder is None:
            raise PhotosUnavailable("no catalogue load recorded a photos folder: run `atelier catalog load`")
        if not await asyncio.to_thread(folder.is_dir):
            raise PhotosUnavailable(f"the catalogue's photos folder {folder} is not mounted in this search process")
        return await asyncio.to_thread(_read, photo_path(folder, article_id))

    async def close(self) -> None:
        await self._client.aclose()


def _read(path: Path) -> bytes | None:
    try:
        if path.stat().st_size > MAX_PHOTO_BYTES:
            return None
        return path.read_bytes()
    except OSError:
        return None
