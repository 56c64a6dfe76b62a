"""Debian packages fetched and unpacked without root: `apt-get download`, then `dpkg-deb -x`.

What the project takes from Debian (the Fashion-MNIST photos, Prometheus and promtool, the Redis
exporter) is never installed: the package's files are unpacked into a scratch folder, and the
caller moves what it keeps into an ignored folder of the checkout (build/).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class PackageUnavailable(RuntimeError):
    """A package could not be fetched (no apt-get or dpkg-deb, no package lists, no network, ...)."""


@contextmanager
def unpacked(package: str, near: Path, version: str = "") -> Iterator[Path]:
    """The root of `package`'s unpacked files, in a scratch folder inside `near` (the caller moves what it
    keeps with one rename), removed on exit. `version` pins it (apt's syntax: `2.42.0*` is any Debian
    revision of 2.42.0). Raises PackageUnavailable saying why."""
    missing = [tool for tool in ("apt-get", "dpkg-deb") if shutil.which(tool) is None]
    if missing:
        raise PackageUnavailable(f"{' and '.join(missing)} not found")
    near.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{package}-", dir=near) as scratch:
        work = Path(scratch)
        work.chmod(0o755)  # lets apt's unprivileged _apt user write there when run as root
        _run(["apt-get", "download", f"{package}={version}" if version else package], work)
        debs = sorted(work.glob(f"{package}_*.deb"))
        if not debs:
            raise PackageUnavailable(f"apt-get download {package} left no .deb in {work}")
        _run(["dpkg-deb", "-x", str(debs[-1]), str(work / "root")], work)
        yield work / "root"


def _run(command: list[str], cwd: Path) -> None:
    try:
        subprocess.run(command, cwd=cwd, check=True, capture_output=True, text=True, timeout=600)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as error:
        output = error.stderr if isinstance(error.stderr, str) else ""
        tail = output.strip().splitlines()[-3:]
        raise PackageUnavailable(
            f"`{' '.join(command)}` failed ({error}); it needs apt's package lists (apt-get update) and "
            "network access" + (": " + " | ".join(tail) if tail else "")
        ) from error
