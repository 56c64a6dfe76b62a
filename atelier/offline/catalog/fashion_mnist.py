"""Fashion-MNIST (Zalando, MIT licence): fetched from Debian's `dataset-fashion-mnist` and read with numpy.

70,000 grayscale 28x28 article photos in 10 classes (CLASS_NAMES), the garment bright on a black
background: a `train` split of 60,000 and a `test` split of 10,000. The package ships them as
gzipped IDX files (`train-images-idx3-ubyte.gz`, `t10k-labels-idx1-ubyte.gz`, ...).

Fetching needs neither root nor Docker (atelier.debian: `apt-get download`, `dpkg-deb -x`); the four
data files are kept in `build/datasets/`.
A system-wide install of the package is used as it is.
"""

from __future__ import annotations

import gzip
import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np

from atelier.debian import PackageUnavailable, unpacked
from atelier.serving.settings import ROOT

PACKAGE = "dataset-fashion-mnist"
PACKAGE_DIR = Path("usr/share/datasets/fashion-mnist")  # inside the .deb
SYSTEM_DIR = Path("/") / PACKAGE_DIR
DEFAULT_DIR = ROOT / "build" / "datasets" / "fashion-mnist"
IMAGE_SIZE = 28

CLASS_NAMES: tuple[str, ...] = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

Split = Literal["train", "test"]
# split -> (images file, labels file)
FILES: dict[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
_ALL_FILES = tuple(name for pair in FILES.values() for name in pair)
_UBYTE = 0x08


class FashionMnistUnavailable(RuntimeError):
    """Fashion-MNIST is not on this machine and could not be fetched (no apt-get, no network, ...)."""


def _complete(directory: Path) -> bool:
    return all((directory / name).is_file() for name in _ALL_FILES)


def ensure_fashion_mnist(dest: Path = DEFAULT_DIR) -> Path:
    """The folder holding the four Fashion-MNIST files, fetching them into `dest` on first use.

    That is `dest` once fetched, or the system-wide package's folder when it is installed.
    Raises FashionMnistUnavailable when apt-get or dpkg-deb is missing or the download fails.
    """
    dest = Path(dest)
    if _complete(dest):
        return dest
    if _complete(SYSTEM_DIR):
        return SYSTEM_DIR
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        # Unpacked next to `dest`, so each file lands there whole with one rename.
        with unpacked(PACKAGE, dest.parent) as root:
            files = root / PACKAGE_DIR
            if not _complete(files):
                raise FashionMnistUnavailable(f"the {PACKAGE} package lacks some of {', '.join(_ALL_FILES)}")
            dest.mkdir(parents=True, exist_ok=True)
            for name in _ALL_FILES:
                os.replace(files / name, dest / name)
    except PackageUnavailable as error:
        raise FashionMnistUnavailable(
            f"Fashion-MNIST is not in {dest} and cannot be fetched: {error}. On Debian/Ubuntu it comes from the "
            f"`{PACKAGE}` package; elsewhere, put {', '.join(_ALL_FILES)} into {dest}."
        ) from error
    return dest


def load_split(split: Split, directory: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 [N, 28, 28], labels uint8 [N]) of the `train` or `test` split, read-only arrays.

    `directory` holds the IDX files; by default they are fetched with `ensure_fashion_mnist`.
    Each split is read once per process.
    """
    if split not in FILES:
        raise ValueError(f"split must be one of {', '.join(FILES)}, got {split!r}")
    folder = Path(directory) if directory is not None else ensure_fashion_mnist()
    return _load(split, folder.resolve())


@lru_cache(maxsize=4)
def _load(split: str, directory: Path) -> tuple[np.ndarray, np.ndarray]:
    images_file, labels_file = FILES[split]
    images = read_idx(directory / images_file)
    labels = read_idx(directory / labels_file)
    if images.ndim != 3 or images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
        raise ValueError(f"{directory / images_file}: expected [N, 28, 28] images, got {list(images.shape)}")
    if labels.shape != images.shape[:1]:
        raise ValueError(f"{directory}: {len(images)} {split} images but labels of shape {list(labels.shape)}")
    if labels.size and labels.max() >= len(CLASS_NAMES):
        raise ValueError(f"{directory / labels_file}: label {labels.max()} is not a Fashion-MNIST class")
    images.flags.writeable = False
    labels.flags.writeable = False
    return images, labels


def read_idx(path: Path) -> np.ndarray:
    """An unsigned-byte IDX array (as in MNIST's files; read-only), gzipped when the name ends in .gz."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        data = handle.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != _UBYTE:
        raise ValueError(f"{path} is not an unsigned-byte IDX file")
    ndim = data[3]
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    size = int(np.prod(shape, dtype=np.int64))
    if len(data) != header + size:
        raise ValueError(f"{path}: header says {list(shape)} ({size} bytes), file holds {len(data) - header}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)
