"""The feature store's Lua scripts, queued by SHA in pipelines on a single Redis or a cluster.

A pipeline answers NOSCRIPT when a server has not seen a script (restarted, flushed, or a replica just
promoted by a failover): the scripts are then loaded on every primary (redis-py sends SCRIPT LOAD to all of
a cluster's primaries) and the pipeline runs once more. Every script declares its keys, all in one slot.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from typing import Any, TypeVar

from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot
from redis.exceptions import NoScriptError

from atelier.serving.redis_clients import AsyncRedis


def _source(name: str) -> str:
    return resources.files(__package__).joinpath(name).read_text()


@dataclass(frozen=True)
class Script:
    text: str

    @classmethod
    def writer(cls, name: str) -> Script:
        """A write script: the `#!lua` shebang, the shared helpers (common.lua), then its own body."""
        return cls("#!lua\n" + _source("common.lua") + "\n" + _source(name))

    @classmethod
    def reader(cls, name: str) -> Script:
        return cls(_source(name))

    @cached_property
    def sha(self) -> str:
        return hashlib.sha1(self.text.encode()).hexdigest()  # noqa: S324 (the server names scripts by SHA-1)

    def queue(self, pipe: Any, keys: Sequence[str], args: Sequence[str | int | float]) -> None:
        # execute_command: redis-py's cluster pipeline refuses its evalsha() helper (it cannot know that the
        # keys share a slot), but routes a plain EVALSHA by its declared keys and checks that they do.
        pipe.execute_command("EVALSHA", self.sha, len(keys), *keys, *args)


APPLY_ARTICLE_CLICKS = Script.writer("apply_article_clicks.lua")
APPLY_USER_CLICKS = Script.writer("apply_user_clicks.lua")
READ_WINDOWS = Script.reader("read_windows.lua")
ALL = (APPLY_ARTICLE_CLICKS, APPLY_USER_CLICKS, READ_WINDOWS)


Item = TypeVar("Item", bound=Hashable)


def by_slot(client: AsyncRedis, items: Iterable[Item], key_of: Callable[[Item], str]) -> list[list[Item]]:
    """`items` grouped into script calls by the cluster slot of `key_of(item)`, in order; on a single server
    one group holds them all."""
    if not isinstance(client, RedisCluster):
        everything = list(items)
        return [everything] if everything else []
    groups: dict[int, list[Item]] = {}
    for item in items:
        groups.setdefault(key_slot(key_of(item).encode()), []).append(item)
    return list(groups.values())


async def run_pipeline(client: AsyncRedis, build: Callable[[Any], None], raise_on_error: bool = True) -> list[Any]:
    """Runs the commands `build` queues in one non-transactional pipeline (per node on a cluster); loads
    the scripts and runs it again after NOSCRIPT (every script here may run twice: the writers' markers
    make a second run of an applied click a no-op). Errors: raised, or (raise_on_error=False) in the replies."""
    replies: list[Any] = []
    for attempt in range(2):
        pipe = client.pipeline(transaction=False)
        build(pipe)
        try:
            replies = await pipe.execute(raise_on_error=raise_on_error)
        except NoScriptError:
            if attempt:
                raise
        else:
            if attempt or not any(isinstance(reply, NoScriptError) for reply in replies):
                return replies
        for script in ALL:
            await client.script_load(script.text)
    return replies
