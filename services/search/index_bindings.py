"""The collection each alias names now, and the model version that built it, re-read in the background.

Search embeds a query with exactly the model version that built the collection it searches, and
searches that collection by name: when `atelier models publish` switches an alias to a collection
built by a new version, search moves to both at once, within one refresh interval (the publisher
keeps the old version loaded for longer than that). Until Milvus has answered once, an alias is
searched as it is, with the model version Triton serves.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from pymilvus import AsyncMilvusClient

from atelier.serving import article_index
from atelier.serving.article_index import IndexBinding
from atelier.serving.polling import Poller

log = logging.getLogger(__name__)


class IndexBindings(Poller):
    name = "index-bindings"

    def __init__(self, milvus: AsyncMilvusClient, aliases: Sequence[str], interval_s: float, timeout_s: float) -> None:
        super().__init__(interval_s)
        self._milvus = milvus
        self._timeout_s = timeout_s
        self._bound: dict[str, IndexBinding] = {alias: IndexBinding(alias, None) for alias in aliases}
        self._seen: set[str] = set()

    def current(self, alias: str) -> IndexBinding:
        return self._bound.get(alias, IndexBinding(alias, None))

    def exists(self, alias: str) -> bool:
        """Whether Milvus has said the alias names a collection (a collection being filled for the
        first time, by the first run, does not count until it is named)."""
        return alias in self._seen

    async def poll(self) -> None:
        for alias in self._bound:
            bound = await article_index.resolve(self._milvus, alias, self._timeout_s)
            if bound is None:
                continue  # not loaded yet: searching the alias says so
            self._seen.add(alias)
            if bound != self._bound[alias]:
                log.info(
                    "index bound",
                    extra={"alias": alias, "collection": bound.collection, "model_version": bound.model_version},
                )
            self._bound[alias] = bound
