"""Run the Triton 2.51 server bundled in the nvidia-pytriton wheel, CPU-only, in the foreground.

The process is meant to be supervised (supervisord): ``python -m atelier.stack.triton ...``
prepares the python backend, then execs ``tritonserver`` so the supervised PID is the server.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import sys
import sysconfig
import time
from collections.abc import Sequence
from pathlib import Path

import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException


def _pytriton_dir() -> Path:
    # find_spec does not execute pytriton/__init__.py, which needs deps we don't install.
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("nvidia-pytriton is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def _server_dir() -> Path:
    return _pytriton_dir() / "tritonserver"


def _libs_dir() -> Path:
    return _pytriton_dir().parent / "nvidia_pytriton.libs"


def _copy_if_changed(src: Path, dst: Path) -> None:
    if dst.exists():
        s, d = src.stat(), dst.stat()
        if s.st_size == d.st_size and int(s.st_mtime) == int(d.st_mtime):
            return
    # Copy then rename: overwriting a stub that a running server still executes fails
    # with ETXTBSY, and a concurrent start must never see a half-written file.
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    shutil.copy2(src, tmp)
    os.replace(tmp, dst)


def prepare_backends(state_dir: Path) -> Path:
    """Create (idempotently) ``state_dir/backends/python`` and return ``state_dir/backends``."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = _server_dir() / "python_backend_stubs" / version / "triton_python_backend_stub"
    if not stub.is_file():
        raise RuntimeError(f"no python backend stub for Python {version} in {stub.parent}")
    backends = Path(state_dir) / "backends"
    python_backend = backends / "python"
    python_backend.mkdir(parents=True, exist_ok=True)
    for src in (_server_dir() / "backends" / "python").iterdir():
        if src.is_file():
            _copy_if_changed(src, python_backend / src.name)
    _copy_if_changed(stub, python_backend / stub.name)
    return backends


def _prepend(var: str, *dirs: str) -> str:
    current = os.environ.get(var, "")
    return os.pathsep.join([*dirs, *([current] if current else [])])


def triton_command(
    model_repository: Path,
    state_dir: Path,
    grpc_port: int,
    http_port: int,
    metrics_port: int,
    host: str = "127.0.0.1",
    load_models: Sequence[str] = (),
) -> tuple[list[str], dict[str, str]]:
    """Return (argv, env additions) for running tritonserver; merge env into ``os.environ``."""
    argv = [
        str(_server_dir() / "bin" / "tritonserver"),
        f"--model-repository={Path(model_repository).resolve()}",
        f"--backend-directory={(Path(state_dir) / 'backends').resolve()}",
        "--model-control-mode=explicit",
        *(f"--load-model={name}" for name in load_models),
        "--exit-on-error=true",
        # Not strict: a version that failed to load (a refused `atelier models publish`) stays listed as
        # UNAVAILABLE, and strict readiness would then call the whole server unready while the serving
        # versions answer. Readiness of each model is checked by name (wait_ready, search's watch).
        "--strict-readiness=false",
        "--pinned-memory-pool-byte-size=0",
        "--allow-gpu-metrics=false",
        f"--grpc-address={host}",
        f"--grpc-port={grpc_port}",
        f"--http-address={host}",
        f"--http-port={http_port}",
        f"--metrics-address={host}",
        f"--metrics-port={metrics_port}",
    ]
    env = {
        # The backend .so and the stub are copied out of the wheel, so their $ORIGIN rpath
        # no longer reaches the bundled libs; the stub also needs this interpreter's libpython.
        "LD_LIBRARY_PATH": _prepend("LD_LIBRARY_PATH", str(_libs_dir()), str(sysconfig.get_config_var("LIBDIR"))),
        # The stub locates its Python (and so this venv's site-packages) through PATH.
        "PATH": _prepend("PATH", str(Path(sys.prefix) / "bin")),
        # Each model's torch threads sleep when idle instead of spinning: the models share the cores, and
        # a spinning pool takes them from the one working (a rerank beside query embeddings: +42 % pairs
        # scored, docs/performance.md; 5 % slower alone).
        "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE"),
    }
    return argv, env


def _not_ready(client: grpcclient.InferenceServerClient, models: Sequence[str]) -> str | None:
    """Return what is not ready yet, or None when everything is."""
    if not client.is_server_live(client_timeout=1):
        return "server live"
    if not client.is_server_ready(client_timeout=1):
        return "server ready"
    for model in models:
        if not client.is_model_ready(model, client_timeout=1):
            return f"model {model}"
    return None


def wait_ready(host: str, grpc_port: int, timeout_s: float, models: Sequence[str] = ()) -> None:
    """Block until the server is live and ready and every model in ``models`` is ready."""
    address = f"[{host}]:{grpc_port}" if ":" in host else f"{host}:{grpc_port}"
    deadline = time.monotonic() + timeout_s
    client = grpcclient.InferenceServerClient(address)
    try:
        while True:
            try:
                pending = _not_ready(client, models)
            except InferenceServerException as exc:
                pending = f"server at {address} ({exc.message()})"
            if pending is None:
                return
            if time.monotonic() >= deadline:
                raise TimeoutError(f"Triton not ready after {timeout_s}s: waiting for {pending}")
            time.sleep(0.2)
    finally:
        client.close()


def main(args: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m atelier.stack.triton")
    parser.add_argument("--model-repository", type=Path, required=True)
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--grpc-port", type=int, default=8001)
    parser.add_argument("--http-port", type=int, default=8000)
    parser.add_argument("--metrics-port", type=int, default=8002)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--load-model", action="append", default=[], dest="load_models", metavar="NAME")
    ns = parser.parse_args(args)

    prepare_backends(ns.state_dir)
    argv, env = triton_command(
        ns.model_repository,
        ns.state_dir,
        ns.grpc_port,
        ns.http_port,
        ns.metrics_port,
        host=ns.host,
        load_models=ns.load_models,
    )
    sys.stdout.flush()
    os.execvpe(argv[0], argv, {**os.environ, **env})


if __name__ == "__main__":
    main()
