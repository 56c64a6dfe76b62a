"""What generated explanations cost, and whom: searches that ask for none, alone and while others ask for them.

Runs against a stack that is up with a catalogue loaded and SEARCH_EXPLAIN_MODE=llm (for template mode it
measures the template's cost):

    SEARCH_EXPLAIN_MODE=llm make up
    .venv/bin/python benchmarks/explanation_cost.py [--requests 200] [--explainers 2] [--explain-top 3]

One closed-loop client of plain searches (no explanation, unique queries), measured three times: alone;
beside `--explainers` other closed-loop clients searching without explanations (the load alone); beside
as many asking for `explainTop` (their generations beyond SEARCH_EXPLAIN_MAX_IN_FLIGHT get the template's
sentences at once). The second and third differ only by the generations: their difference is what
explanations cost the searches that ask for none. For the explained searches: how many sentences were
generated and shown, failed the check, or were not generated (busy, over budget), and their explain stage
and whole latency.
"""

from __future__ import annotations

import asyncio
import collections
import time
import urllib.parse

import aiohttp

from atelier.edge.client import key_headers
from atelier.serving.settings import Endpoints
from benchmarks.common import load_arguments, machine, summary
from benchmarks.search_text import unique_queries


async def _search(
    session: aiohttp.ClientSession, base: str, query: str, k: int, explain_top: int
) -> tuple[float, dict]:
    params = {"query": query, "k": k, **({"explainTop": explain_top} if explain_top else {})}
    started = time.perf_counter()
    async with session.get(f"{base}/v1/search?{urllib.parse.urlencode(params)}") as response:
        body = await response.json()
        if response.status != 200:
            raise RuntimeError(f"{response.status}: {body}")
    return (time.perf_counter() - started) * 1000, body


def _line(label: str, values: list[float]) -> str:
    figures = summary(values)
    return f"{label}: n={len(values)} p50 {figures['p50']:.1f} ms, p95 {figures['p95']:.1f}, p99 {figures['p99']:.1f}"


async def main() -> None:
    parser = load_arguments(__doc__, requests=200, warmup=10)
    parser.add_argument("--explainers", type=int, default=2, help="clients asking for explanations in phase 2")
    parser.add_argument("--explain-top", type=int, default=3)
    args = parser.parse_args()
    base = Endpoints.from_env().edge_url
    queries = unique_queries(args.seed)
    print(f"machine: {machine()}")
    print(
        f"{args.requests} plain searches per phase (k={args.k}, 1 client); phase 2 adds {args.explainers} "
        f"client(s) asking explainTop={args.explain_top}"
    )
    async with aiohttp.ClientSession(headers=key_headers(), timeout=aiohttp.ClientTimeout(total=120)) as session:
        for query in queries[: args.warmup]:
            await _search(session, base, query, args.k, 0)
        plain = iter(queries[args.warmup :])

        async def plain_phase() -> list[float]:
            return [(await _search(session, base, next(plain), args.k, 0))[0] for _ in range(args.requests)]

        alone = await plain_phase()
        print(_line("plain searches, alone", alone))
        others = iter(queries[args.warmup + 3 * args.requests :])

        async def beside(explain_top: int) -> tuple[list[float], list[tuple[float, dict]]]:
            stop = asyncio.Event()
            answers: list[tuple[float, dict]] = []

            async def other_client() -> None:
                while not stop.is_set():
                    answers.append(await _search(session, base, next(others), args.k, explain_top))

            clients = [asyncio.create_task(other_client()) for _ in range(args.explainers)]
            await asyncio.sleep(0.5)
            measured = await plain_phase()
            stop.set()
            await asyncio.gather(*clients)
            return measured, answers

        loaded, _ = await beside(0)
        print(_line(f"plain searches, beside {args.explainers} plain clients", loaded))
        explaining, explained = await beside(args.explain_top)
        print(_line(f"plain searches, beside {args.explainers} explaining clients", explaining))
    sources = [r.get("explanation", {}).get("source", "") for _, body in explained for r in body["results"]]
    reasons = [
        d["reason"] for _, body in explained for d in body.get("degradations", []) if d["component"] == "explainer"
    ]
    stage = [t["millis"] for _, body in explained for t in body.get("timings", []) if t["stage"] == "explain"]
    print(_line("explained searches", [ms for ms, _ in explained]))
    print(_line("  their explain stage", stage))
    print(
        f"  sentences: {sources.count('EXPLANATION_SOURCE_GENERATED')} generated and shown, "
        f"{reasons.count('DEGRADATION_REASON_EXPLANATION_UNGROUNDED')} failed the check; answers not generated: "
        f"{reasons.count('DEGRADATION_REASON_DOWNSTREAM_CAPACITY_REJECTED')} busy, "
        f"{reasons.count('DEGRADATION_REASON_INFERENCE_TIMEOUT')} over budget, "
        f"{reasons.count('DEGRADATION_REASON_MODEL_NOT_READY')} not ready"
    )
    others = collections.Counter(
        f"{d['component']} {d['reason'].removeprefix('DEGRADATION_REASON_').lower()}"
        for _, body in explained
        for d in body.get("degradations", [])
        if d["component"] != "explainer"
    )
    print(f"  their other degradations: {dict(others) or 'none'}")


if __name__ == "__main__":
    asyncio.run(main())
