"""A Triton process of a test's own serving models of triton_models/, on ports apart from every stack's."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from atelier.serving.settings import ROOT
from atelier.stack.triton import prepare_backends, triton_command, wait_ready

HOST = "127.0.0.1"


def _names(model: str | Sequence[str]) -> list[str]:
    return [model] if isinstance(model, str) else list(model)


def start_triton(
    state: Path, ports: tuple[int, int, int], model: str | Sequence[str], settings_prefix: str, **settings: str
) -> tuple[subprocess.Popen[bytes], Path]:
    """(the server, its log) loading only ``model`` (a name, or several) with ``settings`` as
    environment variables.

    The developer's own variables starting with ``settings_prefix`` (the model's settings) do not
    leak into the server under test.
    """
    prepare_backends(state)
    argv, env = triton_command(ROOT / "triton_models", state, *ports, host=HOST, load_models=_names(model))
    server_env = {k: v for k, v in os.environ.items() if not k.startswith(settings_prefix)}
    log = state / "triton.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            argv,
            env={**server_env, "HF_HUB_OFFLINE": "1", **settings, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return process, log


def stop_triton(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def serving(
    state: Path, ports: tuple[int, int, int], model: str | Sequence[str], settings_prefix: str, **settings: str
) -> Iterator[str]:
    """The gRPC address of a Triton serving ``model`` (or several) once ready (the log's tail if it never is)."""
    process, log = start_triton(state, ports, model, settings_prefix, **settings)
    try:
        try:
            wait_ready(HOST, ports[0], timeout_s=120, models=_names(model))
        except TimeoutError as exc:
            raise RuntimeError(f"{exc}\n--- triton log ---\n{log.read_text()[-4000:]}") from exc
        yield f"{HOST}:{ports[0]}"
    finally:
        stop_triton(process)
