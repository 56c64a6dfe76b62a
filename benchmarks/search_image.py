"""SearchImage and SearchHybrid (with a photo) through Envoy (REST): latency at several concurrencies, by stage.

Runs against a stack that is up with vision on (CLIP weights from `atelier models train-clip`,
the image collection filled by `atelier catalog load`):

    .venv/bin/python -m benchmarks.search_image [--requests 300] [--concurrency 1,10]

Query photos are Fashion-MNIST's held-out test split rendered as catalogue photos in random
catalogue colours (PNG, base64 in the JSON body); no catalogue photo comes from that split.
Hybrid requests carry a photo and a query text that is new every time (search_text.py's unique
queries), so neither the query-embedding cache nor the rerank cache answers them. Closed-loop
clients; for each (kind, concurrency): client-side p50/p95/p99, the mean of each stage the
service reports in `timings` (over the requests that report it), and the share of degraded
answers. Exits with a message when the stack runs without vision.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import aiohttp

from atelier.edge.client import key_headers
from atelier.serving.settings import Endpoints
from benchmarks.common import load_arguments, machine, query_photos, summary, vision_off_reason
from benchmarks.search_text import unique_queries

PATHS = {"image": "/v1/search:image", "hybrid": "/v1/search:hybrid"}
PHOTOS_PER_CLASS = 50  # 500 photos, cycled: the image embedding is never cached


@dataclass(frozen=True)
class Outcome:
    millis: float
    stages: dict[str, float]
    degraded: bool
    error: str | None = None  # a hard error: any status but 200 (429 included: it is reported, not hidden)


def request_bodies(kind: str, photos: list[str], texts: Iterator[str], n: int, k: int, user: str) -> list[dict]:
    bodies = []
    for i in range(n):
        body: dict[str, str | int] = {"image": photos[i % len(photos)], "k": k}
        if kind == "hybrid":
            body["query"] = next(texts)
        if user:
            body["userId"] = user
        bodies.append(body)
    return bodies


async def _one(session: aiohttp.ClientSession, url: str, body: dict) -> Outcome:
    started = time.perf_counter()
    async with session.post(url, json=body) as response:
        reply = await response.json(content_type=None)
    millis = (time.perf_counter() - started) * 1000
    if response.status != 200:
        return Outcome(millis, {}, False, f"{response.status}: {str(reply.get('message', ''))[:100]}")
    stages = {t["stage"]: t["millis"] for t in reply.get("timings", [])}
    return Outcome(millis, stages, bool(reply.get("degradations")))


async def run_phase(base: str, kind: str, bodies: list[dict], concurrency: int) -> list[Outcome]:
    outcomes: list[Outcome] = []
    pending = iter(bodies)
    url = base + PATHS[kind]
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(headers=key_headers(), connector=connector) as session:

        async def worker() -> None:
            for body in pending:
                outcomes.append(await _one(session, url, body))

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return outcomes


def stage_means(outcomes: list[Outcome]) -> dict[str, tuple[float, int]]:
    """stage -> (mean ms over the requests that report it, how many did), in the service's order."""
    values: dict[str, list[float]] = {}
    for outcome in outcomes:
        for stage, millis in outcome.stages.items():
            values.setdefault(stage, []).append(millis)
    return {stage: (sum(v) / len(v), len(v)) for stage, v in values.items()}


def report(kind: str, concurrency: int, outcomes: list[Outcome], seconds: float) -> list[str]:
    """Prints the row; returns the hard errors."""
    errors = [o.error for o in outcomes if o.error]
    latency = summary([o.millis for o in outcomes])
    degraded = sum(o.degraded for o in outcomes) / len(outcomes)
    stages = ", ".join(
        f"{stage} {mean:.1f}" + ("" if n == len(outcomes) else f" (n={n})")
        for stage, (mean, n) in stage_means(outcomes).items()
    )
    print(
        f"| {kind} | {concurrency} | {len(outcomes)} | {len(outcomes) / seconds:.1f} | "
        f"{latency['p50']:.1f} | {latency['p95']:.1f} | {latency['p99']:.1f} | {degraded:.1%} | "
        f"{len(errors)} | {stages} |"
    )
    return errors


async def main() -> int:
    args = load_arguments(__doc__, requests=300, warmup=20).parse_args()
    base = Endpoints.from_env().edge_url
    photos = query_photos(PHOTOS_PER_CLASS, args.seed)
    async with aiohttp.ClientSession(headers=key_headers()) as session:
        off = await vision_off_reason(session, base, photos[0])
    if off:
        print(f"vision off: {off}\nimage and hybrid search cannot be measured on this stack.")
        return 2
    print(f"machine: {machine()}")
    print(
        f"1 run; {args.requests} requests per row after {args.warmup} warm-up requests; "
        f"{len(photos)} held-out photos; k={args.k}; user: {args.user or 'anonymous'}\n"
    )
    columns = ("kind", "concurrency", "requests", "req/s", "p50 ms", "p95 ms", "p99 ms", "degraded", "hard errors")
    print("| " + " | ".join((*columns, "mean ms per stage")) + " |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    errors: list[str] = []
    texts = iter(unique_queries(args.seed))
    for concurrency in [int(c) for c in args.concurrency.split(",")]:
        for kind in PATHS:
            warm = request_bodies(kind, photos[::-1], texts, args.warmup, args.k, args.user)
            await run_phase(base, kind, warm, concurrency)
            bodies = request_bodies(kind, photos, texts, args.requests, args.k, args.user)
            started = time.perf_counter()
            outcomes = await run_phase(base, kind, bodies, concurrency)
            errors += report(kind, concurrency, outcomes, time.perf_counter() - started)
    for error, count in Counter(errors).most_common():
        print(f"hard error x{count}: {error}")
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
