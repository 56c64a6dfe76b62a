"""The edge's limits, measured against a stack that is up (`make up`):

    .venv/bin/python -m benchmarks.edge_limits [--posts 10] [--post-mb 100]

1. Body limit: --posts REST posts of --post-mb MB each (declared length, streamed) with a valid key;
   prints each answer's status and Envoy's RSS before and after (the limit must answer 413 without
   buffering the bodies: RSS stays within 50 MB).
2. Header timeout: a client sending one header line a second; prints when Envoy cuts it off.
3. Rate limit: 150 requests at 50/s with a key of its own limited to 10/s (burst 20), then revoked;
   prints the count of each status (the probe found 150 x 200 before keys existed).
"""

from __future__ import annotations

import argparse
import collections
import http.client
import socket
import time

from atelier.edge.client import key_headers
from atelier.edge.keys import KeyFile
from atelier.edge.settings import EnvoyLimits, KeyFileSettings
from atelier.serving.settings import state_dir
from atelier.stack import procfs
from atelier.stack.launcher import Stack


def _rss_mib(pid: int) -> float:
    return procfs.memory_kib(pid)["VmRSS"] / 1024


def post_declared(host: str, port: int, size: int, headers: dict[str, str]) -> tuple[int, bytes, float]:
    """One POST /v1/search:image declaring `size` bytes, sent in 64 KiB chunks until Envoy stops reading:
    the status, the body and the seconds until the answer."""
    started = time.monotonic()
    connection = http.client.HTTPConnection(host, port, timeout=60)
    try:
        connection.putrequest("POST", "/v1/search:image")
        for name, value in {**headers, "content-type": "application/json", "content-length": str(size)}.items():
            connection.putheader(name, value)
        connection.endheaders()
        chunk = b"A" * 65536
        try:
            for _ in range(size // len(chunk)):
                connection.send(chunk)
        except OSError:
            pass  # answered and closed: the rest was never read
        response = connection.getresponse()
        body = response.read()
        return response.status, body, time.monotonic() - started
    finally:
        connection.close()


def trickle(host: str, port: int, give_up_s: float = 120.0) -> tuple[float, bytes]:
    """Seconds until Envoy cuts a client sending a header line a second, and what it answered."""
    with socket.create_connection((host, port), timeout=1) as connection:
        connection.sendall(b"GET /v1/popular?k=1 HTTP/1.1\r\nHost: edge\r\n")
        started, answer = time.monotonic(), b""
        while time.monotonic() - started < give_up_s:
            try:
                connection.sendall(b"X-Slow: 1\r\n")
                chunk = connection.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                break
            if not chunk:
                break
            answer += chunk
        return time.monotonic() - started, answer


def rate_limited(host: str, port: int, requests: int = 150, per_s: float = 50.0) -> collections.Counter[int]:
    keys = KeyFile(KeyFileSettings.from_env().path(state_dir()))
    key = keys.create("bench-edge-limits", rate_per_s=10, burst=20)
    statuses: collections.Counter[int] = collections.Counter()
    try:
        connection = http.client.HTTPConnection(host, port, timeout=10)
        started = time.monotonic()
        for n in range(requests):
            time.sleep(max(0.0, started + n / per_s - time.monotonic()))
            connection.request("GET", "/v1/popular?k=1", headers={"x-api-key": key})
            response = connection.getresponse()
            response.read()
            statuses[response.status] += 1
        connection.close()
    finally:
        keys.revoke("bench-edge-limits")
    return statuses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--posts", type=int, default=10)
    parser.add_argument("--post-mb", type=int, default=100)
    args = parser.parse_args()
    stack = Stack.from_env()
    endpoints = stack.endpoints
    pid = stack.supervisor.info("envoy")["pid"]
    host, port = endpoints.host, endpoints.envoy_port
    limits = EnvoyLimits.from_env()
    print(f"body limit {limits.max_request_bytes} bytes; header timeout {limits.request_headers_timeout_s:g}s")

    before = _rss_mib(pid)
    answers = [post_declared(host, port, args.post_mb * 1_000_000, key_headers()) for _ in range(args.posts)]
    after = _rss_mib(pid)
    statuses = collections.Counter(status for status, _, _ in answers)
    slowest = max(seconds for _, _, seconds in answers)
    print(f"{args.posts} posts of {args.post_mb} MB: statuses {dict(statuses)}, slowest answer {slowest:.2f}s")
    print(f"Envoy RSS: {before:.1f} MiB before, {after:.1f} MiB after ({after - before:+.1f} MiB)")

    seconds, answer = trickle(host, port)
    first_line = answer.split(b"\r\n", 1)[0].decode(errors="replace") or "(closed without an answer)"
    print(f"trickling headers: cut off after {seconds:.1f}s, answer: {first_line}")

    print(f"150 requests at 50/s, key limited to 10/s burst 20: {dict(sorted(rate_limited(host, port).items()))}")


if __name__ == "__main__":
    main()
