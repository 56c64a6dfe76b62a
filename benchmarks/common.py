"""Shared by the benchmark scripts: machine description, latency summaries, query photos, the vision probe."""

from __future__ import annotations

import argparse
import base64
import random
import statistics
from collections.abc import Sequence

import aiohttp

from atelier.offline.machine import machine

__all__ = ["load_arguments", "machine", "percentile", "query_photos", "summary", "vision_off_reason"]

FAILED_PRECONDITION = 9  # google.rpc.Code in the edge's JSON error body


def load_arguments(description: str | None, requests: int, warmup: int) -> argparse.ArgumentParser:
    """The options every search benchmark takes: how many requests, at which concurrencies, as whom."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=requests)
    parser.add_argument("--concurrency", default="1,10")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=warmup)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--user", default="", help="search as this user (personalised: features + ranker)")
    return parser


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary(values: Sequence[float]) -> dict[str, float]:
    return {
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "p99": percentile(values, 99),
        "mean": statistics.fmean(values) if values else float("nan"),
    }


def query_photos(per_class: int, seed: int) -> list[str]:
    """Held-out query photos (atelier/offline/evaluation/photos.py), base64 for REST bodies, classes mixed."""
    from atelier.offline.evaluation.photos import held_out_photos

    _, files = held_out_photos(per_class, seed)
    random.Random(seed).shuffle(files)
    return [base64.b64encode(data).decode() for data in files]


async def vision_off_reason(session: aiohttp.ClientSession, base: str, photo: str) -> str | None:
    """None when the stack answers image searches; else its FAILED_PRECONDITION message
    (VISION_ENABLED=0, or no image collection loaded)."""
    async with session.post(f"{base}/v1/search:image", json={"image": photo, "k": 1}) as response:
        body = await response.json(content_type=None)
    if response.status == 200:
        return None
    if response.status == 400 and body.get("code") == FAILED_PRECONDITION:
        return str(body.get("message", ""))
    raise RuntimeError(f"image search probe: {response.status}: {body}")
