"""The local stack's Prometheus and Redis exporter: their binaries and Prometheus' config.

Both come from Debian's packages (`prometheus`, which ships promtool too, and
`prometheus-redis-exporter`), pinned to one upstream version, fetched and unpacked without root
into build/tools/ on first use (atelier.debian). Prometheus scrapes every component of the stack on
the launcher's ports and evaluates deploy/prometheus/rules.yml, the rules compose and k8s load too.
The local broker (Tansu) exports no Prometheus metrics: Kafka's side is covered by the stream
workers' consumer lag and topic offsets and the features service's produce outcomes and latency.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from atelier.debian import PackageUnavailable, unpacked
from atelier.files import write_private
from atelier.serving.settings import ROOT, Endpoints
from atelier.stack import StackError
from atelier.stack.milvus_runner import derive_ports
from atelier.stack.replicas import REPLICATED, replicas
from atelier.stack.stream_workers import web_port as stream_web_port

TOOLS = ROOT / "build" / "tools"
RULES = ROOT / "deploy" / "prometheus" / "rules.yml"
SCRAPE_INTERVAL = "15s"


@dataclass(frozen=True)
class DebianTool:
    """A Debian package's binaries, unpacked into build/tools/<package>-<version>/."""

    package: str
    version: str  # upstream version; any Debian revision of it

    @property
    def folder(self) -> Path:
        return TOOLS / f"{self.package}-{self.version}"

    def binary(self, name: str) -> Path:
        return self.folder / "usr" / "bin" / name

    def ensure(self) -> Path:
        """The unpacked package's folder, fetched on first use; PackageUnavailable says why it cannot be."""
        if not self.folder.is_dir():
            with unpacked(self.package, TOOLS, f"{self.version}*") as root:
                os.replace(root, self.folder)
        return self.folder


PROMETHEUS = DebianTool("prometheus", "2.42.0")
REDIS_EXPORTER = DebianTool("prometheus-redis-exporter", "1.45.0")


def promtool() -> Path:
    """promtool (`check config`, `check rules`, `test rules`), fetched on first use."""
    PROMETHEUS.ensure()
    return PROMETHEUS.binary("promtool")


def ensure_tools() -> None:
    """Fetches Prometheus and the Redis exporter unless they are here; StackError says how to do without."""
    for tool in (PROMETHEUS, REDIS_EXPORTER):
        try:
            tool.ensure()
        except PackageUnavailable as error:
            raise StackError(
                f"cannot fetch Debian's {tool.package} {tool.version}: {error} "
                "(ATELIER_PROMETHEUS_ENABLED=0 starts the stack without Prometheus)"
            ) from error


def scrape_jobs(
    endpoints: Endpoints, stream_workers: int = 1, replica_counts: Mapping[str, int] | None = None
) -> dict[str, tuple[list[int], str]]:
    """job -> (ports on the stack's host, metrics path): every component that exports metrics, each
    primary stream worker (ATELIER_STREAM_WORKERS) a target of the stream job, each replica of search,
    ranker and features (`replica_counts`, default one each: atelier.stack.replicas) of its service's."""
    counts = replica_counts or {}
    return {
        "prometheus": ([endpoints.prometheus_port], "/metrics"),
        **{
            service: ([each.metrics_port for each in replicas(endpoints, service, counts.get(service, 1))], "/metrics")
            for service in REPLICATED
        },
        "edge-auth": ([endpoints.edge_auth_metrics_port], "/metrics"),
        "envoy": ([endpoints.envoy_stats_port], "/stats/prometheus"),
        "stream": ([stream_web_port(endpoints, number) for number in range(1, stream_workers + 1)], "/metrics"),
        "stream-retry": ([endpoints.stream_retry_web_port], "/metrics"),
        "triton": ([endpoints.triton_metrics_port], "/metrics"),
        "milvus": ([derive_ports(endpoints.milvus_port)["metrics_port"]], "/metrics"),
        "redis": ([endpoints.redis_exporter_port], "/metrics"),
    }


def render_config(
    endpoints: Endpoints,
    rules: Path = RULES,
    stream_workers: int = 1,
    replica_counts: Mapping[str, int] | None = None,
) -> str:
    """prometheus.yml of the local stack: a static target per component, the shared rules."""
    scrape_configs: list[dict[str, Any]] = [
        {
            "job_name": job,
            "metrics_path": path,
            "static_configs": [{"targets": [endpoints.address(port) for port in ports]}],
        }
        for job, (ports, path) in scrape_jobs(endpoints, stream_workers, replica_counts).items()
    ]
    config = {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
        "rule_files": [str(rules)],
        "scrape_configs": scrape_configs,
    }
    return "# Written by `atelier up` (atelier/stack/prometheus.py): edits are overwritten.\n" + yaml.safe_dump(
        config, sort_keys=False
    )


def prepare(
    endpoints: Endpoints,
    state: Path,
    redis_password: str,
    stream_workers: int = 1,
    replica_counts: Mapping[str, int] | None = None,
) -> None:
    """Before the stack starts: the binaries, Prometheus' config, the exporter's password file (0600)."""
    ensure_tools()
    folder = prometheus_dir(state)
    folder.mkdir(parents=True, exist_ok=True)
    config = render_config(endpoints, stream_workers=stream_workers, replica_counts=replica_counts)
    (folder / "prometheus.yml").write_text(config)
    write_private(redis_password_file(state), json.dumps({redis_address(endpoints): redis_password}))


def prometheus_dir(state: Path) -> Path:
    return state / "prometheus"


def redis_password_file(state: Path) -> Path:
    """The Redis exporter's password file, JSON: {Redis' address: password}."""
    return state / "redis-exporter-passwords.json"


def redis_address(endpoints: Endpoints) -> str:
    return f"redis://{endpoints.address(endpoints.redis_port)}"


def prometheus_command(endpoints: Endpoints, state: Path) -> list[str]:
    folder = prometheus_dir(state)
    return [
        str(PROMETHEUS.binary("prometheus")),
        f"--config.file={folder / 'prometheus.yml'}",
        f"--storage.tsdb.path={folder / 'data'}",
        "--storage.tsdb.retention.time=2d",
        f"--web.listen-address={endpoints.address(endpoints.prometheus_port)}",
    ]


def redis_exporter_command(endpoints: Endpoints, state: Path) -> list[str]:
    return [
        str(REDIS_EXPORTER.binary("prometheus-redis-exporter")),
        f"-redis.addr={redis_address(endpoints)}",
        f"-redis.password-file={redis_password_file(state)}",
        f"-web.listen-address={endpoints.address(endpoints.redis_exporter_port)}",
    ]
