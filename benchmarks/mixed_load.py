"""The original's mixed workload through Envoy (REST): 70 % text search, 15 % image search,
10 % hybrid search, 5 % clicks, from --concurrency closed-loop clients for --seconds, or open loop:
requests arriving at --rate per second (Poisson arrivals, each sent at its time whether or not the
earlier ones were answered, latency counted from that time).

Runs against a stack that is up with a catalogue loaded (`make up`):

    .venv/bin/python -m benchmarks.mixed_load [--concurrency 10] [--seconds 120]
    .venv/bin/python -m benchmarks.mixed_load --soak          # c=10 for 600 s
    .venv/bin/python -m benchmarks.mixed_load --rate 8 --mix text=100 --repeated-share 0 --out build/load-8.json

Queries are varied (colour, style, garment), 30 % of them from a head of 50 popular queries as
real traffic repeats itself; half the searches carry one of --users user ids, clicks go to
articles that searches returned, as those users. Image searches send a held-out photo
(Fashion-MNIST's test split rendered as a catalogue photo, never in the catalogue); hybrid
searches send a query and, half the time, such a photo. A probe image search comes first: when
the stack runs without vision (VISION_ENABLED=0, or no image collection), text search stands in
for image and hybrid search (said in the output) and their latencies are reported under their
own names. Prints throughput, latency per request kind, the hard-error rate (transport errors,
timeouts, any non-2xx but 429), the degraded rate (answers with degradations), the rerank depth of
text and hybrid searches (the share reranked, at depth >= 20, and the distribution; `--out` writes
it for `atelier eval --depth-mix`), and the RSS of every component's process tree at start and end.
`--answers FILE` writes one JSON line per search answered (its time, kind, rerank depth, stage timings
and degradations with their details: why a search was shed or went over its budget).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import random
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import aiohttp

from atelier.edge.client import key_headers
from atelier.offline.catalog.fashion_mnist import FashionMnistUnavailable
from atelier.stack import procfs
from atelier.stack.launcher import Stack
from benchmarks.common import machine, query_photos, summary, vision_off_reason
from benchmarks.search_text import unique_queries

MIX = {"text": 70, "image": 15, "hybrid": 10, "click": 5}
# What stands in for the kinds that need vision when the stack runs without it.
STAND_INS = {"image": "text", "hybrid": "text"}
REPEATED_SHARE = 0.3
POPULAR_QUERIES = 50
PERSONALISED_SHARE = 0.5
HYBRID_PHOTO_SHARE = 0.5
PHOTOS_PER_CLASS = 20
TIMEOUT_S = 10.0


@dataclass
class Tally:
    latencies_ms: dict[str, list[float]] = field(default_factory=lambda: collections.defaultdict(list))
    hard_errors: collections.Counter[str] = field(default_factory=collections.Counter)
    rejected: int = 0  # 429: admission control said no, which is not a failure
    degraded: int = 0
    degradations: collections.Counter[str] = field(default_factory=collections.Counter)
    searches: int = 0  # attempted, answered or not
    clicks: int = 0
    rerank_depths: collections.Counter[int] = field(default_factory=collections.Counter)  # text and hybrid


@dataclass(frozen=True)
class ProcessTree:
    pid: int
    processes: int
    rss_kib: int


def process_trees(stack: Stack) -> dict[str, ProcessTree]:
    """component -> its supervised process and everything below it."""
    trees = {}
    for info in stack.supervisor.all_info():
        if not info["pid"]:
            continue
        pids = procfs.descendants([info["pid"]])
        rss = sum(procfs.memory_kib(pid).get("VmRSS", 0) for pid in pids)
        trees[info["name"]] = ProcessTree(info["pid"], len(pids), rss)
    return trees


def answer_line(kind: str, reply: Mapping[str, Any]) -> dict[str, Any]:
    """What --answers keeps of one answered search."""
    return {
        "time": time.time(),
        "kind": kind,
        "rerank_depth": int(reply.get("rerankDepth", 0)),
        "timings": {timing["stage"]: timing["millis"] for timing in reply.get("timings", [])},
        "degradations": [
            {key: degradation.get(key, "") for key in ("component", "reason", "detail")}
            for degradation in reply.get("degradations", [])
        ],
    }


class Workload:
    def __init__(
        self,
        base: str,
        seed: int,
        users: int,
        photos: Sequence[str],
        stand_ins: Mapping[str, str],
        mix: Mapping[str, int] = MIX,
        repeated_share: float = REPEATED_SHARE,
        answers: TextIO | None = None,
    ) -> None:
        """`photos`: base64 query photos; `stand_ins`: kind -> the kind sent instead (vision off); `answers`:
        where each answered search's line goes."""
        self._answers = answers
        self._base = base
        self._photos = photos
        self._stand_ins = stand_ins
        self._rng = random.Random(seed)
        self._fresh = iter(unique_queries(seed))
        self._popular = unique_queries(seed + 1)[:POPULAR_QUERIES]
        self._repeated_share = repeated_share
        run = uuid.uuid4().hex[:6]
        self._users = [f"mixed-{run}-{n}" for n in range(users)]
        self._kinds = list(mix)
        self._weights = list(mix.values())
        self._seen: collections.deque[str] = collections.deque(maxlen=500)
        self.tally = Tally()

    def _query(self) -> str:
        if self._rng.random() < self._repeated_share:
            return self._rng.choice(self._popular)
        return next(self._fresh, None) or self._rng.choice(self._popular)

    async def _search(self, session: aiohttp.ClientSession, kind: str) -> None:
        user = {"userId": self._rng.choice(self._users)} if self._rng.random() < PERSONALISED_SHARE else {}
        sent = self._stand_ins.get(kind, kind)
        if sent == "text":
            params: dict[str, str | int] = {"query": self._query(), "k": 10, **user}
            request = session.get(f"{self._base}/v1/search", params=params)
        elif sent == "image":
            body = {"image": self._rng.choice(self._photos), "k": 10, **user}
            request = session.post(f"{self._base}/v1/search:image", json=body)
        else:
            body = {"query": self._query(), "k": 10, **user}
            if self._rng.random() < HYBRID_PHOTO_SHARE:
                body["image"] = self._rng.choice(self._photos)
            request = session.post(f"{self._base}/v1/search:hybrid", json=body)
        async with request as response:
            reply = await response.json(content_type=None)
            self._settle(kind, response.status, reply)
        if response.status == 200:
            self.tally.degraded += bool(reply.get("degradations"))
            self.tally.degradations.update(f"{d['component']} {d['reason']}" for d in reply.get("degradations", []))
            self._seen.extend(r["article"]["articleId"] for r in reply.get("results", [])[:3])
            if sent != "image":  # a photo alone has no text to rerank by
                self.tally.rerank_depths[int(reply.get("rerankDepth", 0))] += 1
            if self._answers is not None:
                self._answers.write(json.dumps(answer_line(kind, reply)) + "\n")

    async def _click(self, session: aiohttp.ClientSession) -> None:
        click = {
            "userId": self._rng.choice(self._users),
            "itemId": self._rng.choice(self._seen),
            "position": self._rng.randint(1, 10),
            "source": "search",
            "device": self._rng.choice(["web", "ios", "android"]),
        }
        async with session.post(f"{self._base}/v1/events/clicks", json=click) as response:
            await response.read()
            self._settle("click", response.status, None)

    def _settle(self, kind: str, status: int, body: dict | None) -> None:
        if status == 429:
            self.tally.rejected += 1
        elif not 200 <= status < 300:
            self.tally.hard_errors[f"{kind} {status}: {(body or {}).get('message', '')[:80]}"] += 1

    async def one(self, session: aiohttp.ClientSession, sent_at: float | None = None) -> None:
        """One request of the mix; its latency counts from `sent_at` (open loop: when it was due)."""
        kind = self._rng.choices(self._kinds, self._weights)[0]
        if kind == "click" and not self._seen:  # no result shown yet to click on
            kind = "text"
        if kind == "click":
            self.tally.clicks += 1
        else:
            self.tally.searches += 1
        started = time.perf_counter() if sent_at is None else sent_at
        try:
            if kind == "click":
                await self._click(session)
            else:
                await self._search(session, kind)
        except (aiohttp.ClientError, TimeoutError, ValueError) as error:
            self.tally.hard_errors[f"{kind}: {type(error).__name__}"] += 1
            return
        self.tally.latencies_ms[kind].append((time.perf_counter() - started) * 1000)


async def run(workload: Workload, concurrency: int, seconds: float) -> tuple[Tally, float]:
    """Closed loop: `concurrency` clients, each sending its next request once the last is answered."""
    timeout = aiohttp.ClientTimeout(total=TIMEOUT_S)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(headers=key_headers(), connector=connector, timeout=timeout) as session:
        started = time.perf_counter()
        deadline = started + seconds

        async def client() -> None:
            while time.perf_counter() < deadline:
                await workload.one(session)

        await asyncio.gather(*(client() for _ in range(concurrency)))
        return workload.tally, time.perf_counter() - started


async def run_open(workload: Workload, rate: float, seconds: float, seed: int) -> tuple[Tally, float]:
    """Open loop: requests due at Poisson arrivals of `rate` per second, each sent when due."""
    arrivals = random.Random(seed + 1)
    timeout = aiohttp.ClientTimeout(total=TIMEOUT_S)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(headers=key_headers(), connector=connector, timeout=timeout) as session:
        started = time.perf_counter()
        due, sent = started, []
        while True:
            due += arrivals.expovariate(rate)
            if due - started >= seconds:
                break
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            sent.append(asyncio.create_task(workload.one(session, sent_at=due)))
        await asyncio.gather(*sent)
        return workload.tally, time.perf_counter() - started


def report(
    tally: Tally,
    seconds: float,
    before: dict[str, ProcessTree],
    after: dict[str, ProcessTree],
    stand_ins: Mapping[str, str],
) -> None:
    requests = tally.searches + tally.clicks
    hard = sum(tally.hard_errors.values())
    print(f"duration: {seconds:.1f} s; {requests} requests (1 run)")
    print(f"searches: {tally.searches / seconds:.1f}/s; clicks: {tally.clicks / seconds:.1f}/s")
    print(f"hard errors: {hard} = {hard / max(requests, 1):.2%}; rejected (429): {tally.rejected}")
    print(f"degraded searches: {tally.degraded} = {tally.degraded / max(tally.searches, 1):.2%}")
    for what, count in [*tally.hard_errors.most_common(5), *tally.degradations.most_common(5)]:
        print(f"  {count} x {what}")
    depths = tally.rerank_depths
    asked = sum(depths.values())
    if asked:
        reranked = sum(n for depth, n in depths.items() if depth > 0)
        floor = sum(n for depth, n in depths.items() if depth >= FLOOR_DEPTH)
        mean = sum(depth * n for depth, n in depths.items()) / asked
        print(
            f"reranked: {reranked / asked:.1%} of {asked} text and hybrid searches answered; at depth >= "
            f"{FLOOR_DEPTH}: {floor / asked:.1%}; mean depth {mean:.1f}"
        )
        print("  depth: " + ", ".join(f"{low}-{high} {_between(depths, low, high) / asked:.0%}" for low, high in BANDS))
    print("\n| kind | requests | p50 ms | p95 ms | p99 ms |\n|---|---|---|---|---|")
    for kind in [kind for kind in MIX if tally.latencies_ms[kind]]:
        latency = summary(tally.latencies_ms[kind])
        label = f"{kind} ({stand_ins[kind]} stand-in)" if kind in stand_ins else kind
        print(
            f"| {label} | {len(tally.latencies_ms[kind])} | "
            f"{latency['p50']:.1f} | {latency['p95']:.1f} | {latency['p99']:.1f} |"
        )
    print("\n| component | processes | RSS MiB start | RSS MiB end | growth |\n|---|---|---|---|---|")
    for name, start in before.items():
        end = after.get(name)
        if end is None or end.pid != start.pid:
            print(f"| {name} | {start.processes} | {start.rss_kib / 1024:.0f} | restarted or gone | - |")
            continue
        growth = (end.rss_kib - start.rss_kib) / start.rss_kib if start.rss_kib else 0.0
        print(f"| {name} | {end.processes} | {start.rss_kib / 1024:.0f} | {end.rss_kib / 1024:.0f} | {growth:+.1%} |")
    total_start = sum(t.rss_kib for t in before.values()) / 1024
    total_end = sum(t.rss_kib for t in after.values()) / 1024
    growth = (total_end - total_start) / total_start if total_start else 0.0
    print(f"| total | | {total_start:.0f} | {total_end:.0f} | {growth:+.1%} |")


FLOOR_DEPTH = 20  # SEARCH_RERANK_MIN_DEPTH's default
BANDS = ((0, 0), (1, 19), (20, 39), (40, 59), (60, 79), (80, 99), (100, 100))


def _between(depths: Mapping[int, int], low: int, high: int) -> int:
    return sum(n for depth, n in depths.items() if low <= depth <= high)


def parse_mix(text: str) -> dict[str, int]:
    """`text=70,image=15,...` -> {kind: weight}, kinds of MIX only."""
    mix = {}
    for part in text.split(","):
        kind, _, weight = part.partition("=")
        if kind.strip() not in MIX or not weight.strip().isdigit():
            raise argparse.ArgumentTypeError(f"--mix takes kind=weight of {', '.join(MIX)}, got {part!r}")
        mix[kind.strip()] = int(weight)
    return mix


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", type=int, default=10, help="closed-loop clients")
    parser.add_argument("--rate", type=float, help="open loop instead: requests per second, Poisson arrivals")
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--soak", action="store_true", help="the soak preset: concurrency 10 for 600 s")
    parser.add_argument("--mix", type=parse_mix, default=MIX, help="kind=weight,... (default the original's)")
    parser.add_argument("--repeated-share", type=float, default=REPEATED_SHARE, help="queries from the popular head")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--users", type=int, default=200, help="how many user ids search and click")
    parser.add_argument("--out", type=Path, help="write the rerank depth distribution and latencies here (JSON)")
    parser.add_argument("--answers", type=Path, help="write one JSON line per answered search here")
    args = parser.parse_args()
    if args.soak:
        args.concurrency, args.seconds = 10, 600
    stack = Stack.from_env()
    base = stack.endpoints.edge_url
    photos, off = asyncio.run(_vision(base, args.seed))
    stand_ins = STAND_INS if off else {}
    load = f"open loop, {args.rate:g} requests/s (Poisson)" if args.rate else f"concurrency {args.concurrency}"
    print(f"machine: {machine()}")
    print(
        f"mix: {', '.join(f'{share} % {kind}' for kind, share in _shares(args.mix).items())}; {load}; "
        f"{args.repeated_share:.0%} of queries from a head of {POPULAR_QUERIES}"
    )
    if off:
        print(f"vision off: {off}")
        for kind, stand_in in stand_ins.items():
            print(f"substitution: {stand_in} search stands in for {kind} search")
    else:
        print(
            f"vision on: {len(photos)} held-out query photos; hybrid with a photo {HYBRID_PHOTO_SHARE:.0%} of the time"
        )
    before = process_trees(stack)
    answers = None
    if args.answers:
        args.answers.parent.mkdir(parents=True, exist_ok=True)
        answers = args.answers.open("w")
    workload = Workload(base, args.seed, args.users, photos, stand_ins, args.mix, args.repeated_share, answers)
    if args.rate:
        tally, seconds = asyncio.run(run_open(workload, args.rate, args.seconds, args.seed))
    else:
        tally, seconds = asyncio.run(run(workload, args.concurrency, args.seconds))
    if answers is not None:
        answers.close()
    report(tally, seconds, before, process_trees(stack), stand_ins)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        figures = {kind: summary(values) for kind, values in tally.latencies_ms.items() if values}
        written = {"machine": machine(), "load": load, "seconds": seconds, "latency_ms": figures}
        written["rerank_depths"] = {str(depth): n for depth, n in sorted(tally.rerank_depths.items())}
        args.out.write_text(json.dumps(written, indent=2) + "\n")
        print(f"written: {args.out}")


def _shares(mix: Mapping[str, int]) -> dict[str, float]:
    total = sum(mix.values())
    return {kind: round(100 * weight / total) for kind, weight in mix.items()}


async def _vision(base: str, seed: int) -> tuple[list[str], str | None]:
    """The query photos, and why image and hybrid search cannot run here (None when they can)."""
    try:
        photos = query_photos(PHOTOS_PER_CLASS, seed)
    except FashionMnistUnavailable as error:
        return [], f"no held-out query photos: {error}"
    async with aiohttp.ClientSession(headers=key_headers(), timeout=aiohttp.ClientTimeout(total=TIMEOUT_S)) as session:
        return photos, await vision_off_reason(session, base, photos[0])


if __name__ == "__main__":
    main()
