"""A second search service on the test stack, on ports of its own and with settings of its own."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import grpc

from atelier.serving.settings import ROOT
from atelier.stack import readiness
from fashion.v1 import search_service_pb2_grpc as pb_grpc


@contextmanager
def search_service(
    port: int, metrics_port: int, settings: Mapping[str, str], log: Path
) -> Iterator[pb_grpc.SearchServiceStub]:
    """`python -m services.search` with the test stack's environment and `settings`; its stub once SERVING."""
    environment = {
        **os.environ,
        **settings,
        "ATELIER_SEARCH_PORT": str(port),
        "ATELIER_SEARCH_METRICS_PORT": str(metrics_port),
    }
    with log.open("w") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "services.search"], cwd=ROOT, env=environment, stdout=output, stderr=output
        )
    address = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                readiness.grpc_serving(address, "fashion.v1.SearchService")
                break
            except Exception:  # noqa: BLE001 - not up yet
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"search did not come up: {log.read_text()[-2000:]}") from None
                time.sleep(0.25)
        with grpc.insecure_channel(address) as channel:
            yield pb_grpc.SearchServiceStub(channel)
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
