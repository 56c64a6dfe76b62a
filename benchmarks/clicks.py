"""The click loop under load: click-to-visible latency, ingest throughput, acknowledgement latency.

Runs against a stack that is up (`make up`):

    .venv/bin/python -m benchmarks.clicks [--rate 200] [--seconds 60] [--burst 30000]

1. Open loop at --rate clicks/s for --seconds through Envoy (REST RecordClick),
   one new user per click; a watcher polls Redis for each user's recent-clicks
   key every few milliseconds. Reports RecordClick latency (which is the
   producer's acknowledgement wait plus the edge), the service's own
   acknowledgement histogram, and click-to-visible latency (accepted -> readable).
2. Sustained end-to-end throughput: --burst records produced straight to the
   clicks topic as fast as the producer goes, timed until every one is
   applied in Redis (the stream workers' rate), and the API's own rate at
   concurrency 32 for 15 s.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import time
import urllib.request
import uuid

import aiohttp
from confluent_kafka import Producer

from atelier.edge.client import key_headers
from atelier.serving import item_store, redis_clients
from atelier.serving.click_event import ClickRecord
from atelier.serving.feature_store import keys
from atelier.serving.settings import Endpoints
from atelier.serving.topics import Topics
from benchmarks.common import machine, summary


def _body(user: str, article: str) -> dict:
    return {"userId": user, "itemId": article, "position": 1, "source": "search", "device": "web"}


async def catalogue_article(endpoints: Endpoints) -> str:
    """An article of the loaded catalogue: a click on any other is refused."""
    store = redis_clients.async_client(endpoints)
    try:
        article = await item_store.any_article_id(store)
    finally:
        await store.aclose()
    if article is None:
        raise SystemExit("no catalogue loaded: run `make up` (or `atelier catalog load`) first")
    return article


async def open_loop(endpoints: Endpoints, article: str, rate: float, seconds: float) -> None:
    store = redis_clients.async_client(endpoints)
    accepted: dict[str, float] = {}
    visible: dict[str, float] = {}
    api_ms: list[float] = []
    errors = 0
    run = uuid.uuid4().hex[:6]
    stop = asyncio.Event()

    async def watch() -> None:
        while not stop.is_set() or len(visible) < len(accepted):
            pending = [u for u in accepted if u not in visible]
            if pending:
                pipe = store.pipeline(transaction=False)
                for user in pending:
                    pipe.exists(keys.user_recent(user))
                now = time.perf_counter()
                for user, found in zip(pending, await pipe.execute(), strict=True):
                    if found:
                        visible[user] = now
            await asyncio.sleep(0.002)
            if stop.is_set() and time.perf_counter() - last_send > 30:
                break

    async def click(session: aiohttp.ClientSession, user: str) -> None:
        nonlocal errors
        started = time.perf_counter()
        async with session.post(f"{endpoints.edge_url}/v1/events/clicks", json=_body(user, article)) as response:
            await response.read()
            if response.status != 200:
                errors += 1
                return
        done = time.perf_counter()
        api_ms.append((done - started) * 1000)
        accepted[user] = done

    last_send = time.perf_counter()
    watcher = asyncio.create_task(watch())
    async with aiohttp.ClientSession(headers=key_headers(), connector=aiohttp.TCPConnector(limit=64)) as session:
        tasks = []
        started = time.perf_counter()
        total = int(rate * seconds)
        for i in range(total):
            delay = started + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(click(session, f"bench-{run}-{i}")))
        last_send = time.perf_counter()
        await asyncio.gather(*tasks)
    stop.set()
    await watcher
    await store.aclose()
    lag = [(visible[u] - accepted[u]) * 1000 for u in accepted if u in visible]
    api, vis = summary(api_ms), summary(lag)
    print(
        f"\nopen loop: {total} clicks at {rate:.0f}/s over {seconds:.0f} s (1 run); {errors} errors, "
        f"{len(accepted) - len(lag)} accepted but never visible"
    )
    print(f"| RecordClick through Envoy | {api['p50']:.1f} | {api['p95']:.1f} | {api['p99']:.1f} |")
    print(f"| click accepted -> visible in Redis | {vis['p50']:.1f} | {vis['p95']:.1f} | {vis['p99']:.1f} |")


def ack_histogram(endpoints: Endpoints) -> str:
    url = f"http://{endpoints.address(endpoints.features_metrics_port)}/metrics"
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    total = float(re.search(r"^features_click_ack_seconds_sum (\S+)", text, re.M).group(1))
    count = float(re.search(r"^features_click_ack_seconds_count (\S+)", text, re.M).group(1))
    return f"producer acknowledgement (features service histogram): mean {total / count * 1000:.2f} ms over {count:.0f}"


async def burst(endpoints: Endpoints, article: str, count: int) -> None:
    topics = Topics.from_env()
    run = uuid.uuid4().hex[:6]
    records = [
        ClickRecord(f"burst-{run}-{i}", f"burst-{run}-{i % 5000}", article, 1, "search", "web", int(time.time() * 1000))
        for i in range(count)
    ]
    producer = Producer(
        {
            "bootstrap.servers": endpoints.broker_bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "partitioner": "murmur2_random",
        }
    )
    started = time.perf_counter()
    for record in records:
        while True:
            try:
                producer.produce(topics.clicks, key=record.user_id.encode(), value=record.to_json())
                break
            except BufferError:
                producer.poll(0.01)
        producer.poll(0)
    producer.flush(60)
    produced = time.perf_counter()
    store = redis_clients.async_client(endpoints)
    remaining = records
    while remaining:
        pipe = store.pipeline(transaction=False)
        for record in remaining:
            pipe.exists(keys.dedupe(record.user_id, record.event_id))
        remaining = [r for r, found in zip(remaining, await pipe.execute(), strict=True) if not found]
        if remaining:
            await asyncio.sleep(0.2)
        if time.perf_counter() - started > 300:
            break
    applied = time.perf_counter()
    await store.aclose()
    print(
        f"\nburst: {count} records produced in {produced - started:.2f} s ({count / (produced - started):.0f}/s); "
        f"all applied in Redis after {applied - started:.2f} s = {count / (applied - started):.0f} events/s "
        f"end to end (1 run; {len(remaining)} missing)"
    )


async def api_rate(endpoints: Endpoints, article: str, concurrency: int, seconds: float) -> None:
    done = 0
    deadline = time.perf_counter() + seconds
    run = uuid.uuid4().hex[:6]
    async with aiohttp.ClientSession(
        headers=key_headers(), connector=aiohttp.TCPConnector(limit=concurrency)
    ) as session:

        async def worker(n: int) -> None:
            nonlocal done
            i = 0
            while time.perf_counter() < deadline:
                async with session.post(
                    f"{endpoints.edge_url}/v1/events/clicks", json=_body(f"rate-{run}-{n}-{i}", article)
                ) as response:
                    await response.read()
                    done += response.status == 200
                i += 1

        await asyncio.gather(*(worker(n) for n in range(concurrency)))
    print(
        f"RecordClick API: {done / seconds:.0f} acknowledged clicks/s at concurrency {concurrency} for {seconds:.0f} s"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--burst", type=int, default=30_000)
    args = parser.parse_args()
    endpoints = Endpoints.from_env()
    print(f"machine: {machine()}")
    print("| measure | p50 ms | p95 ms | p99 ms |\n|---|---|---|---|", end="")
    article = await catalogue_article(endpoints)
    await open_loop(endpoints, article, args.rate, args.seconds)
    print(ack_histogram(endpoints))
    await burst(endpoints, article, args.burst)
    await api_rate(endpoints, article, 32, 15)


if __name__ == "__main__":
    asyncio.run(main())
