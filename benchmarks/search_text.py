"""SearchText through Envoy (REST): latency at several concurrencies, split by stage.

Runs against a stack that is up with a catalogue loaded (`make up`, then
`atelier catalog load` for the full 105,542 articles):

    .venv/bin/python benchmarks/search_text.py [--requests 500] [--concurrency 1,10]

Two query mixes: "unique" (every query new: the embedding cache never hits)
and "repeated" (50 popular queries: after the first round every embedding is
cached). For each: client-side p50/p95/p99, and per request the stages the
service reports (embed, ann) and everything else (client latency minus both).
Triton's own compute time per execution comes from its statistics.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
import urllib.parse

import aiohttp
import tritonclient.grpc as triton

from atelier.edge.client import key_headers
from atelier.serving import redis_clients
from atelier.serving.item_store import CATALOG_META_KEY
from atelier.serving.settings import Endpoints
from benchmarks.common import load_arguments, machine, summary

COLOURS = [
    "black",
    "white",
    "red",
    "blue",
    "dark blue",
    "light blue",
    "green",
    "pink",
    "grey",
    "beige",
    "yellow",
    "brown",
    "khaki",
    "orange",
    "off white",
    "dark grey",
    "light pink",
    "dark red",
    "navy",
    "cream",
]
STYLES = [
    "slim fit",
    "relaxed",
    "oversized",
    "skinny",
    "wide leg",
    "cropped",
    "long",
    "short",
    "striped",
    "printed",
    "knitted",
    "cotton",
    "denim",
    "linen",
    "wool",
    "jersey",
    "ribbed",
    "padded",
    "pleated",
    "lace",
]
GARMENTS = [
    "jeans",
    "trousers",
    "dress",
    "sweater",
    "t-shirt",
    "shirt",
    "blouse",
    "jacket",
    "coat",
    "skirt",
    "shorts",
    "top",
    "hoodie",
    "cardigan",
    "blazer",
    "leggings",
    "jumpsuit",
    "sneakers",
    "boots",
    "bag",
    "hat",
    "scarf",
    "bikini",
    "socks",
    "vest top",
    "chinos",
    "parka",
    "sandals",
    "bra",
    "pyjamas",
]


def unique_queries(seed: int) -> list[str]:
    queries = [" ".join(parts) for parts in itertools.product(COLOURS, STYLES, GARMENTS)]
    random.Random(seed).shuffle(queries)
    return queries


async def _one(
    session: aiohttp.ClientSession, base: str, query: str, k: int, user: str
) -> tuple[float, dict[str, float], int]:
    params = {"query": query, "k": k} | ({"userId": user} if user else {})
    url = f"{base}/v1/search?" + urllib.parse.urlencode(params)
    started = time.perf_counter()
    async with session.get(url) as response:
        body = await response.json()
        if response.status != 200:
            raise RuntimeError(f"{response.status}: {body}")
    latency = (time.perf_counter() - started) * 1000
    return latency, {t["stage"]: t["millis"] for t in body.get("timings", [])}, int(body.get("rerankDepth", 0))


async def run_phase(
    base: str, queries: list[str], concurrency: int, k: int, user: str = ""
) -> list[tuple[float, dict[str, float], int]]:
    """(latency ms, stage timings, rerank depth) of each search."""
    results: list[tuple[float, dict[str, float], int]] = []
    pending = iter(queries)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(headers=key_headers(), connector=connector) as session:

        async def worker() -> None:
            for query in pending:
                results.append(await _one(session, base, query, k, user))

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return results


def triton_compute_ms(client: triton.InferenceServerClient, model: str) -> tuple[float, int]:
    stats = client.get_inference_statistics(model, as_json=True)["model_stats"][0]
    compute = stats["inference_stats"]["compute_infer"]
    return int(compute.get("ns", 0)) / 1e6, int(stats.get("execution_count", 0))


def report(label: str, concurrency: int, results: list, seconds: float, compute: tuple[float, int]) -> None:
    latency = summary([r[0] for r in results])
    embed_key = "embed" if any("embed" in r[1] for r in results) else "embed_cached"
    embed = summary([r[1].get("embed", r[1].get("embed_cached", 0.0)) for r in results])
    ann = summary([r[1].get("ann", 0.0) for r in results])
    other = summary([r[0] - r[1].get("embed", r[1].get("embed_cached", 0.0)) - r[1].get("ann", 0.0) for r in results])
    compute_ms, executions = compute
    per_exec = compute_ms / executions if executions else float("nan")
    depths = sorted(r[2] for r in results)
    deepest = depths[-1] if depths else 0
    at_deepest = sum(depth == deepest for depth in depths) / max(len(depths), 1)
    print(
        f"| {label} | {concurrency} | {len(results)} | {len(results) / seconds:.1f} | "
        f"{latency['p50']:.1f} | {latency['p95']:.1f} | {latency['p99']:.1f} | "
        f"{embed['p50']:.1f} ({embed_key}) | {ann['p50']:.1f} | {other['p50']:.1f} | {per_exec:.1f} ({executions}) | "
        f"{depths[len(depths) // 2] if depths else 0} ({at_deepest:.0%} at {deepest}) |"
    )


async def main() -> None:
    args = load_arguments(__doc__, requests=500, warmup=30).parse_args()
    endpoints = Endpoints.from_env()
    base = endpoints.edge_url
    store = redis_clients.sync_client(endpoints)
    articles = (store.hgetall(CATALOG_META_KEY) or {}).get(b"articles", b"?").decode()
    tc = triton.InferenceServerClient(endpoints.triton_address)
    print(f"machine: {machine()}")
    print(
        f"catalogue: {articles} articles; {args.requests} requests per row after {args.warmup} warm-up requests; "
        f"user: {args.user or 'anonymous'}\n"
    )
    print(
        "| queries | concurrency | requests | req/s | p50 ms | p95 ms | p99 ms | embed p50 ms | ann p50 ms "
        "| other p50 ms | Triton compute ms/exec (execs) | rerank depth p50 |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    fresh = iter(unique_queries(args.seed))
    popular = unique_queries(args.seed + 1)[:50]
    for concurrency in [int(c) for c in args.concurrency.split(",")]:
        for label in ("unique", "repeated"):
            if label == "unique":
                warm = [next(fresh) for _ in range(args.warmup)]
                queries = [next(fresh) for _ in range(args.requests)]
            else:
                warm = popular
                queries = [popular[i % len(popular)] for i in range(args.requests)]
            await run_phase(base, warm, concurrency, args.k, args.user)
            before = triton_compute_ms(tc, "text_embedding")
            started = time.perf_counter()
            results = await run_phase(base, queries, concurrency, args.k, args.user)
            seconds = time.perf_counter() - started
            after = triton_compute_ms(tc, "text_embedding")
            report(label, concurrency, results, seconds, (after[0] - before[0], after[1] - before[1]))


if __name__ == "__main__":
    asyncio.run(main())
