"""Publishing and rolling back a model under load: failed and degraded answers, and p99, during the
swap against before it.

Runs against a stack that is up with a catalogue loaded (`make up`) and a version of the model
serving. The original's mixed workload (benchmarks/mixed_load.py: text, image and hybrid searches
and clicks through Envoy) runs from --concurrency clients: --before-s seconds untouched, then
while `atelier models publish MODEL SOURCE` and `atelier models rollback MODEL` run back to back
(the swap), then --after-s seconds more. SOURCE defaults to the checkpoint the serving version
came from (publishing it again is a real swap: a new version loads and takes over).

    .venv/bin/python -m benchmarks.model_swap [--model reranker] [--source models/reranker]

A degraded answer during the swap counts only when its cause was not already there before it:
on a machine where reranking runs over its budget under load, those degradations come with or
without a swap, and the before phase shows them.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import threading
import time
from pathlib import Path

import aiohttp

from atelier.edge.client import key_headers
from atelier.model_repository.publishing import Publisher
from atelier.model_repository.repository import family_of
from atelier.serving.settings import state_dir
from atelier.stack.launcher import Stack
from atelier.stack.models import model_repository
from benchmarks.common import machine, summary
from benchmarks.mixed_load import MIX, STAND_INS, TIMEOUT_S, Tally, Workload, _vision


async def phase(workload: Workload, concurrency: int, until: threading.Event | float) -> tuple[Tally, float]:
    """Runs `workload` until the event is set (or for that many seconds); its tally and duration."""
    workload.tally = Tally()
    timeout = aiohttp.ClientTimeout(total=TIMEOUT_S)
    async with aiohttp.ClientSession(
        headers=key_headers(), connector=aiohttp.TCPConnector(limit=concurrency), timeout=timeout
    ) as session:
        started = time.perf_counter()

        def going() -> bool:
            if isinstance(until, threading.Event):
                return not until.is_set()
            return time.perf_counter() - started < until

        async def client() -> None:
            while going():
                await workload.one(session)

        await asyncio.gather(*(client() for _ in range(concurrency)))
        return workload.tally, time.perf_counter() - started


def show(name: str, tally: Tally, seconds: float) -> dict[str, float]:
    searches = [ms for kind in MIX for ms in tally.latencies_ms[kind] if kind != "click"]
    everything = [ms for kind in MIX for ms in tally.latencies_ms[kind]]
    hard = sum(tally.hard_errors.values())
    latency = summary(everything)
    print(
        f"| {name} | {seconds:.1f} | {tally.searches + tally.clicks} | {hard} | {tally.degraded} | "
        f"{summary(searches)['p50']:.1f} | {latency['p99']:.1f} |"
    )
    return latency


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="reranker", help="the model (family) to publish and roll back")
    parser.add_argument("--source", type=Path, help="checkpoint to publish (default: the serving version's source)")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--before-s", type=float, default=30)
    parser.add_argument("--after-s", type=float, default=10)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--users", type=int, default=50)
    args = parser.parse_args()

    stack = Stack.from_env()
    repository = model_repository(state_dir())
    family = family_of(args.model)
    folder = repository.model(family.models[0])
    serving = folder.serving()
    if serving is None:
        raise SystemExit(f"{family.name} serves no version: publish one first (`atelier models publish`)")
    source = args.source or Path(folder.record(serving)["source"])
    photos, off = asyncio.run(_vision(stack.endpoints.edge_url, args.seed))
    stand_ins = STAND_INS if off else {}
    print(f"machine: {machine()}")
    print(
        f"{family.name}: serving version {serving}; publishing {source} then rolling back, under the mixed load "
        f"({', '.join(f'{share} % {kind}' for kind, share in MIX.items())}) from {args.concurrency} clients; 1 run"
    )
    if off:
        print(f"vision off ({off}): text search stands in for image and hybrid search")

    log: list[str] = []
    publisher = Publisher(repository, stack.endpoints, say=log.append)
    swapped = threading.Event()
    timeline: dict[str, float] = {}

    def swap() -> None:
        try:
            started = time.perf_counter()
            timeline["published"] = publisher.publish(family.name, source)
            timeline["publish_s"] = time.perf_counter() - started
            started = time.perf_counter()
            timeline["rolled_back_to"] = publisher.rollback(family.name)
            timeline["rollback_s"] = time.perf_counter() - started
        finally:
            swapped.set()

    workload = Workload(stack.endpoints.edge_url, args.seed, args.users, photos, stand_ins)

    async def everything() -> list[tuple[str, Tally, float]]:
        before = await phase(workload, args.concurrency, args.before_s)
        thread = threading.Thread(target=swap, daemon=True)
        thread.start()
        during = await phase(workload, args.concurrency, swapped)
        thread.join()
        after = await phase(workload, args.concurrency, args.after_s)
        return [("before", *before), ("during the swap", *during), ("after", *after)]

    phases = asyncio.run(everything())
    for line in log:
        print(f"  {line}")
    print("\n| phase | seconds | requests | failed | degraded | search p50 ms | p99 ms (all) |")
    print("|---|---|---|---|---|---|---|")
    latencies = {name: show(name, tally, seconds) for name, tally, seconds in phases}
    for name, tally, _ in phases:
        causes = collections.Counter(tally.degradations) + collections.Counter(tally.hard_errors)
        if causes:
            print(f"  {name}: " + "; ".join(f"{n} x {cause}" for cause, n in causes.most_common(4)))
    before_causes = set(phases[0][1].degradations)
    during = phases[1][1]
    new = {cause: n for cause, n in during.degradations.items() if cause not in before_causes}
    print(
        f"\nswap: published version {timeline.get('published')} in {timeline.get('publish_s', 0):.1f} s, rolled back "
        f"to {timeline.get('rolled_back_to')} in {timeline.get('rollback_s', 0):.1f} s; during it "
        f"{sum(during.hard_errors.values())} failed, {sum(new.values())} degraded for a cause absent before "
        f"({new or 'none'}); p99 {latencies['during the swap']['p99']:.0f} ms vs {latencies['before']['p99']:.0f} ms "
        "before"
    )


if __name__ == "__main__":
    main()
