"""The feature store alone, on a single Valkey and on a Valkey cluster (3 primaries, a replica each),
each started here from the local stack's valkey-server in a temporary folder (nothing else runs).

    .venv/bin/python -m benchmarks.feature_store [--clicks 30000] [--reads 200] [--replica-acks]

Writes: --clicks clicks (3,000 users, 5,000 catalogue articles, times over 6 days) in batches of 100
through ClickWriter. Reads, --reads each after the writes: the item signals of 100 articles (what a
search asks), the top 20 popular articles, a user's features. --replica-acks: the writer waits for a
replica on the cluster (STREAM_REPLICA_ACKS=1), as the local stack on a cluster runs it.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import redis
import redis.asyncio as aioredis

from atelier.serving import item_store
from atelier.serving.click_event import ClickRecord
from atelier.serving.feature_store import ClickWriter, FeatureReader, WriterSettings
from atelier.stack.components import redis_server_binary
from benchmarks.common import machine, percentile
from tests.integration.support import valkey_cluster

USERS, ARTICLES, BATCH = 3000, 5000, 100
HOST = valkey_cluster.HOST


@contextmanager
def single(folder: Path) -> Iterator[tuple[redis.Redis, aioredis.Redis]]:
    (port,) = valkey_cluster.free_ports(1)
    command = [str(redis_server_binary()), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder)]
    process = subprocess.Popen([*command, "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
    try:
        sync = redis.Redis(port=port)
        deadline = time.monotonic() + 20
        while not _pings(sync) and time.monotonic() < deadline:
            time.sleep(0.05)
        yield sync, aioredis.Redis(port=port)
    finally:
        process.terminate()
        process.wait()


@contextmanager
def cluster(folder: Path) -> Iterator[tuple[redis.Redis, aioredis.Redis]]:
    with valkey_cluster.running(folder, valkey_cluster.free_ports(6)) as nodes:
        port = nodes.ports[0]
        yield redis.RedisCluster(host=HOST, port=port), aioredis.RedisCluster(host=HOST, port=port)


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


async def _timed(call: Callable[[], Awaitable[object]], runs: int) -> list[float]:
    latencies = []
    for _ in range(runs):
        started = time.perf_counter()
        await call()
        latencies.append((time.perf_counter() - started) * 1000)
    return latencies


async def measure(client: aioredis.Redis, clicks: int, reads: int, replica_acks: int) -> dict[str, str]:
    rng = random.Random(1)
    now = int(time.time() * 1000)
    events = [
        ClickRecord(
            f"e{i}",
            f"u{rng.randrange(USERS)}",
            f"{rng.randrange(ARTICLES):010d}",
            0,
            "search",
            "web",
            now - rng.randrange(0, 6 * 86_400_000),
        )
        for i in range(clicks)
    ]
    writer = ClickWriter(client, WriterSettings(replica_acks=replica_acks))
    started = time.perf_counter()
    for start in range(0, len(events), BATCH):
        await writer.apply(events[start : start + BATCH])
    rate = len(events) / (time.perf_counter() - started)
    reader = FeatureReader(client)
    ids = [f"{rng.randrange(ARTICLES):010d}" for _ in range(100)]
    ms = lambda: int(time.time() * 1000)  # noqa: E731
    rows = {"apply, events/s": f"{rate:,.0f}"}
    for name, call in (
        ("item signals of 100 articles", lambda: reader.item_signals(ids, ms())),
        ("popular, top 20", lambda: reader.popular(None, 20, ms())),
        ("a user's features", lambda: reader.user_features("u1", ms())),
    ):
        latencies = await _timed(call, reads)
        rows[f"{name}, p50 / p99 ms"] = f"{percentile(latencies, 50):.2f} / {percentile(latencies, 99):.2f}"
    await client.aclose()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clicks", type=int, default=30_000)
    parser.add_argument("--reads", type=int, default=200)
    parser.add_argument("--replica-acks", action="store_true")
    args = parser.parse_args()
    print(f"machine: {machine()}; {args.clicks} clicks in batches of {BATCH}, {args.reads} reads each, 1 run")
    results = {}
    for name, server in (("single Valkey", single), ("cluster, 3 primaries + 3 replicas", cluster)):
        with tempfile.TemporaryDirectory() as folder, server(Path(folder)) as (sync, client):
            item_store.write_items(
                sync, [{"article_id": f"{i:010d}", "category": f"c{i % 30}"} for i in range(ARTICLES)]
            )
            acks = 1 if args.replica_acks and name.startswith("cluster") else 0
            results[name] = asyncio.run(measure(client, args.clicks, args.reads, acks))
            sync.close()
    names = list(results)
    print(f"\n| measure | {' | '.join(names)} |\n|---|{'---|' * len(names)}")
    for row in results[names[0]]:
        print(f"| {row} | {' | '.join(results[name][row] for name in names)} |")


if __name__ == "__main__":
    main()
