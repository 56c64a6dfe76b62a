"""Text embedding through Triton (text_embedding model, atelier.serving.embedding) vs in-process.

Measures, per torch thread count: Triton start-up time with the model, RSS of the model's stub
process, batch-1 query latency through the tritonclient aio client, and throughput (texts/s)
embedding N passages of ~30 words in chunks, against the same model code (atelier.inference's
TextEncoder) run in this process on the same texts with the same thread count.

    .venv/bin/python benchmarks/embedding_throughput.py [--threads 1,2] [--chunks 32,64] [--repeats 2]

Uses ports 27011-27013 by default and a state folder under /tmp. Figures vary with the machine's
load: run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import torch
import transformers

from atelier.inference.signatures import TEXT_EMBEDDING
from atelier.inference.text_embedding import TextEmbeddingSettings, TextEncoder
from atelier.serving.embedding import TextEmbedder
from atelier.serving.settings import ROOT
from atelier.stack import procfs
from atelier.stack.triton import prepare_backends, triton_command, wait_ready

HOST = "127.0.0.1"
MODEL = TEXT_EMBEDDING.model
QUERIES = ["black slim fit jeans", "red floral summer dress", "wool coat", "white sneakers", "linen shirt men"]

_COLOURS = "black white navy beige red olive camel grey cream burgundy".split()
_FABRICS = "denim cotton linen wool cashmere leather jersey satin corduroy viscose".split()
_GARMENTS = "jeans dress shirt coat sweater blazer skirt trousers jacket hoodie".split()
_DETAILS = (
    "with a relaxed fit and dropped shoulders",
    "in a slim silhouette with a high waist",
    "featuring patch pockets and a button front",
    "with ribbed cuffs and a soft brushed finish",
    "cut from a breathable organic weave",
    "with a concealed zip and tonal stitching",
)


def passages(n: int, seed: int = 7) -> list[str]:
    """Deterministic catalogue-like descriptions of about 30 words each."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        colour, fabric, garment = rng.choice(_COLOURS), rng.choice(_FABRICS), rng.choice(_GARMENTS)
        first, second = rng.sample(_DETAILS, 2)
        out.append(
            f"{colour.capitalize()} {fabric} {garment} {first}, {second}. "
            f"Easy to pair with {rng.choice(_COLOURS)} {rng.choice(_GARMENTS)} for everyday wear "
            f"or the office; machine washable."
        )
    return out


def rss_mib(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process in MiB."""
    memory = procfs.memory_kib(pid)
    return memory["VmRSS"] / 1024, memory["VmHWM"] / 1024


def stub_pids(server_pid: int) -> list[int]:
    def is_stub(pid: int) -> bool:
        try:
            return b"triton_python_backend_stub" in Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return False

    return [p.pid for p in procfs.processes() if p.ppid == server_pid and is_stub(p.pid)]


def summary(values: Sequence[float], unit: str, scale: float = 1.0) -> str:
    v = sorted(x * scale for x in values)
    pct = lambda q: v[min(len(v) - 1, round(q * (len(v) - 1)))]  # noqa: E731
    return f"p50 {pct(0.5):.1f} {unit}, p90 {pct(0.9):.1f}, p99 {pct(0.99):.1f}, min {v[0]:.1f} (n={len(v)})"


async def measure_triton(
    url: str, texts: list[str], chunks: Sequence[int], in_flight: Sequence[int], repeats: int, latency_runs: int
) -> None:
    probe = TextEmbedder(url, timeout_s=120)
    await probe.embed_passages(texts[:64])  # warm-up
    latencies = []
    for i in range(latency_runs + 5):
        start = time.perf_counter()
        await probe.embed_queries([QUERIES[i % len(QUERIES)]])
        if i >= 5:
            latencies.append(time.perf_counter() - start)
    await probe.close()
    print(f"  batch-1 query latency via tritonclient aio: {summary(latencies, 'ms', 1e3)}")
    for chunk in chunks:
        for flight in in_flight:
            embedder = TextEmbedder(url, timeout_s=120, chunk_size=chunk, max_in_flight=flight)
            rates = []
            for _ in range(repeats):
                start = time.perf_counter()
                vectors = await embedder.embed_passages(texts)
                rates.append(len(texts) / (time.perf_counter() - start))
                assert vectors.shape[0] == len(texts)
            await embedder.close()
            figures = ", ".join(f"{r:.0f}" for r in rates)
            print(
                f"  Triton, chunks of {chunk}, {flight} in flight: {figures} texts/s "
                f"(median {statistics.median(rates):.0f})"
            )


def run_triton(threads: int, args: argparse.Namespace, texts: list[str]) -> None:
    state = Path(tempfile.mkdtemp(prefix="atelier-embed-bench-"))
    prepare_backends(state)
    ports = (args.grpc_port, args.grpc_port + 1, args.grpc_port + 2)
    argv, env = triton_command(ROOT / "triton_models", state, *ports, host=HOST, load_models=[MODEL])
    server_env = {k: v for k, v in os.environ.items() if not k.startswith("ATELIER_TEXT_")}
    server_env.update(env, HF_HUB_OFFLINE="1", ATELIER_TEXT_NUM_THREADS=str(threads))
    log = state / "triton.log"
    with log.open("wb") as out:
        start = time.perf_counter()
        process = subprocess.Popen(argv, env=server_env, stdout=out, stderr=subprocess.STDOUT)
    try:
        try:
            wait_ready(HOST, ports[0], timeout_s=180, models=[MODEL])
        except TimeoutError:
            sys.exit(f"Triton did not become ready; log: {log}")
        startup = time.perf_counter() - start
        stubs = stub_pids(process.pid)
        print(f"Triton, {threads} thread(s): start-up to model ready {startup:.1f} s")
        stub_rss = rss_mib(stubs[0]) if stubs else (float("nan"), float("nan"))
        print(f"  RSS after load: stub {stub_rss[0]:.0f} MiB, tritonserver {rss_mib(process.pid)[0]:.0f} MiB")
        asyncio.run(
            measure_triton(f"{HOST}:{ports[0]}", texts, args.chunks, args.in_flight, args.repeats, args.latency_runs)
        )
        if stubs:
            rss, peak = rss_mib(stubs[0])
            print(
                f"  RSS after the runs: stub {rss:.0f} MiB (peak {peak:.0f}), "
                f"tritonserver {rss_mib(process.pid)[0]:.0f} MiB"
            )
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)


def run_in_process(threads: int, args: argparse.Namespace, texts: list[str]) -> None:
    torch.set_num_threads(threads)
    encoder = TextEncoder(TextEmbeddingSettings.from_env({}))
    encoder.encode(texts[:64], ["passage"] * 64)  # warm-up
    latencies = []
    for i in range(args.latency_runs):
        start = time.perf_counter()
        encoder.encode([QUERIES[i % len(QUERIES)]], ["query"])
        latencies.append(time.perf_counter() - start)
    print(f"In-process, {threads} thread(s): batch-1 query latency {summary(latencies, 'ms', 1e3)}")
    for chunk in args.chunks:
        rates = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            for i in range(0, len(texts), chunk):
                encoder.encode(texts[i : i + chunk], ["passage"] * len(texts[i : i + chunk]))
            rates.append(len(texts) / (time.perf_counter() - start))
        figures = ", ".join(f"{r:.0f}" for r in rates)
        print(f"  in-process, chunks of {chunk}: {figures} texts/s (median {statistics.median(rates):.0f})")


def ints(raw: str) -> list[int]:
    return [int(x) for x in raw.split(",") if x]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=ints, default=[1, 2], help="torch thread counts to compare")
    parser.add_argument("--chunks", type=ints, default=[32, 64], help="texts per request")
    parser.add_argument("--in-flight", type=ints, default=[1, 2], help="concurrent requests of the client")
    parser.add_argument("--texts", type=int, default=2048, help="passages to embed per run")
    parser.add_argument("--repeats", type=int, default=2, help="runs per throughput figure")
    parser.add_argument("--latency-runs", type=int, default=100, help="timed batch-1 queries")
    parser.add_argument("--grpc-port", type=int, default=27011, help="HTTP and metrics take the next two")
    parser.add_argument("--skip-triton", action="store_true")
    parser.add_argument("--skip-in-process", action="store_true")
    args = parser.parse_args()
    os.environ["HF_HUB_OFFLINE"] = "1"

    texts = passages(args.texts)
    encoder = TextEncoder(TextEmbeddingSettings.from_env({}))
    tokens = [len(ids) for ids in encoder.tokenizer(texts[:256])["input_ids"]]
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor(),
    )
    print(f"machine: {os.cpu_count()} CPUs ({cpu}), {platform.platform()}")
    print(f"python {platform.python_version()}, torch {torch.__version__}, transformers {transformers.__version__}")
    print(f"model: {encoder.settings.model} from {encoder.model_dir}, dim {encoder.dimension}")
    print(
        f"texts: {len(texts)} passages, {statistics.mean(len(t.split()) for t in texts):.1f} words, "
        f"{statistics.mean(tokens):.1f} tokens on average (incl. CLS/SEP); repeats {args.repeats}, "
        f"latency runs {args.latency_runs}"
    )
    del encoder
    # Each side runs alone so neither steals the other's cores.
    for threads in args.threads:
        if not args.skip_in_process:
            run_in_process(threads, args, texts)
        if not args.skip_triton:
            run_triton(threads, args, texts)


if __name__ == "__main__":
    main()
