"""RecordClick's catalogue check: unknown articles refused, clicks accepted unchecked when Redis cannot tell."""

from __future__ import annotations

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from atelier.serving.click_event import ClickRecord
from atelier.serving.item_store import item_key
from atelier.serving.rpc import InvalidArgument
from services.features.events import CATALOGUE_UNCHECKED, check_catalogue


class _Redis:
    def __init__(self, keys: set[str] = frozenset(), error: Exception | None = None) -> None:
        self._keys, self._error = keys, error

    async def exists(self, *names: str) -> int:
        if self._error:
            raise self._error
        return sum(name in self._keys for name in names)


def _click(item: str) -> ClickRecord:
    return ClickRecord("e1", "u1", item, 0, "search", "web", 1)


async def test_a_catalogue_article_passes() -> None:
    await check_catalogue(_Redis({item_key("0108775015")}), _click("0108775015"))


async def test_an_unknown_article_is_refused_naming_item_id() -> None:
    with pytest.raises(InvalidArgument) as raised:
        await check_catalogue(_Redis({item_key("0108775015")}), _click("FAKE-ITEM"))
    (violation,) = raised.value.violations
    assert violation.field == "click.item_id" and "FAKE-ITEM" in violation.description


@pytest.mark.parametrize("error", [RedisConnectionError("refused"), RedisTimeoutError("slow"), OSError("reset")])
async def test_redis_down_accepts_the_click_unchecked(error: Exception) -> None:
    before = CATALOGUE_UNCHECKED._value.get()
    await check_catalogue(_Redis(error=error), _click("FAKE-ITEM"))  # the stream drops it if unknown
    assert CATALOGUE_UNCHECKED._value.get() == before + 1
