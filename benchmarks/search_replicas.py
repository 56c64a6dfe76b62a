"""Search throughput through Envoy with the stack's replicas as they run, and the CPU each program used.

Against a stack that is up with a catalogue loaded, once per replica count:

    ATELIER_SEARCH_REPLICAS=2 atelier up   # after `atelier down`; 1 is the default
    .venv/bin/python benchmarks/search_replicas.py [--requests 300] [--concurrency 8] [--user u1]

Unique text queries (the embedding cache never hits), as `--user` (personalised: features and ranker
take part) or anonymous. Prints req/s and latency, then per supervisord program the CPU it used during
the run in cores (1.0: one core busy the whole time): the first to reach its share of the machine's
cores is the bottleneck.
"""

from __future__ import annotations

import asyncio
import os
import time

from atelier.serving.settings import Endpoints
from atelier.stack import procfs
from atelier.stack.launcher import Stack
from benchmarks.common import load_arguments, machine, summary
from benchmarks.search_text import run_phase, unique_queries


def program_pids(stack: Stack) -> dict[str, set[int]]:
    """Each running program's process tree (Milvus' and Triton's servers run below their launchers)."""
    return {info["name"]: procfs.descendants([info["pid"]]) for info in stack.supervisor.all_info() if info.get("pid")}


def cpu_by_program(programs: dict[str, set[int]]) -> dict[str, float]:
    return {name: procfs.cpu_seconds(pids) for name, pids in programs.items()}


async def main() -> None:
    args = load_arguments(__doc__, requests=300, warmup=20).parse_args()
    concurrency = int(args.concurrency.split(",")[-1])
    stack = Stack.from_env()
    programs = program_pids(stack)
    replicas = sorted(name for name in programs if name == "search" or name.startswith("search-"))
    queries = iter(unique_queries(args.seed))
    base = Endpoints.from_env().edge_url
    await run_phase(base, [next(queries) for _ in range(args.warmup)], concurrency, args.k, args.user)
    wanted = [next(queries) for _ in range(args.requests)]
    before, client_before = cpu_by_program(programs), os.times()
    started = time.perf_counter()
    results = await run_phase(base, wanted, concurrency, args.k, args.user)
    seconds = time.perf_counter() - started
    after, client_after = cpu_by_program(programs), os.times()
    latency = summary([result[0] for result in results])
    print(f"machine: {machine()}; load average before the run: {os.getloadavg()}")
    print(
        f"search replicas: {len(replicas)} ({', '.join(replicas)}); concurrency {concurrency}; user: "
        f"{args.user or 'anonymous'}; {len(results)} requests in {seconds:.1f}s: {len(results) / seconds:.1f} req/s, "
        f"p50 {latency['p50']:.0f} ms, p95 {latency['p95']:.0f} ms"
    )
    used = {name: (after[name] - before[name]) / seconds for name in programs}
    client = (client_after.user + client_after.system - client_before.user - client_before.system) / seconds
    print("| program | CPU (cores) |\n|---|---|")
    for name, cores in sorted(used.items(), key=lambda item: -item[1]):
        if cores >= 0.01:
            print(f"| {name} | {cores:.2f} |")
    print(f"| (this client) | {client:.2f} |\n| total | {sum(used.values()) + client:.2f} of {os.cpu_count()} |")


if __name__ == "__main__":
    asyncio.run(main())
