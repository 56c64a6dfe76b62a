"""Article photos for the synthetic catalogue: Fashion-MNIST garments, coloured as the article, in H&M's layout.

An article of a product type in TYPE_CLASSES gets a photo of that Fashion-MNIST class, tinted
with its colour_group_name's COLOUR_RGB on a light product-photo background, upscaled to
64x64 and saved as images/0XX/0XXXXXXXXX.jpg. Types without a counterpart (socks, earrings,
bras, ...) get none, as some H&M articles have none.

Held out: catalogue photos come only from Fashion-MNIST's train split (`ArticlePhotos` is built
from it alone); the test split is `held_out_images`, for evaluation queries no catalogue photo
was drawn from.

The photo is a stable hash (blake2b) of the article's product code (its first 7 digits) over
its class's train images: regenerating the catalogue gives the same files, and a product's
colour variants show the same garment in their own colours, as H&M's do.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from atelier.offline.catalog.fashion_mnist import load_split
from atelier.offline.catalog.hm_loader import HMDataset, iter_articles
from atelier.offline.catalog.schema import IMAGES_DIR, PRODUCT_CODE_DIGITS, normalise_article_id

PHOTO_SIZE = 64
JPEG_QUALITY = 90
BACKGROUND: tuple[int, int, int] = (228, 229, 232)  # a light grey studio backdrop

# product_type_name -> Fashion-MNIST class (atelier.offline.catalog.fashion_mnist.CLASS_NAMES).
TYPE_CLASSES: Mapping[str, int] = {
    "T-shirt": 0,  # T-shirt/top
    "Top": 0,
    "Vest top": 0,
    "Trousers": 1,  # Trouser
    "Leggings/Tights": 1,
    "Sweater": 2,  # Pullover
    "Hoodie": 2,
    "Cardigan": 2,
    "Dress": 3,  # Dress
    "Coat": 4,  # Coat
    "Jacket": 4,
    "Blazer": 4,
    "Sandals": 5,  # Sandal
    "Shirt": 6,  # Shirt
    "Blouse": 6,
    "Sneakers": 7,  # Sneaker
    "Bag": 8,  # Bag
    "Boots": 9,  # Ankle boot
}

# Fashion-MNIST class -> the product types whose articles show it.
CLASS_TYPES: Mapping[int, tuple[str, ...]] = {
    label: tuple(name for name, of in TYPE_CLASSES.items() if of == label)
    for label in sorted(set(TYPE_CLASSES.values()))
}

# colour_group_name -> the garment's RGB.
COLOUR_RGB: Mapping[str, tuple[int, int, int]] = {
    "Black": (22, 22, 24),
    "White": (252, 252, 250),
    "Off White": (241, 235, 220),
    "Light Beige": (230, 214, 188),
    "Beige": (207, 184, 148),
    "Dark Beige": (163, 136, 100),
    "Light Grey": (196, 196, 198),
    "Grey": (135, 135, 138),
    "Dark Grey": (70, 70, 74),
    "Light Blue": (148, 188, 228),
    "Blue": (38, 88, 196),
    "Dark Blue": (24, 34, 88),
    "Turquoise": (36, 186, 180),
    "Light Pink": (244, 188, 204),
    "Pink": (232, 106, 158),
    "Dark Pink": (186, 38, 98),
    "Red": (208, 28, 34),
    "Dark Red": (124, 18, 28),
    "Purple": (118, 58, 160),
    "Green": (46, 158, 68),
    "Dark Green": (24, 78, 40),
    "Khaki green": (118, 118, 68),
    "Yellow": (244, 212, 46),
    "Orange": (238, 128, 28),
    "Brown": (108, 68, 38),
    "Silver": (188, 190, 198),
    "Gold": (210, 172, 52),
}

# Fashion-MNIST pixels are coverage and inverted brightness: 0 is background, and a garment's
# darker parts are brighter. Pixels at or above _OPAQUE are all garment; the shade runs from
# _LIGHT (the garment's faintest parts) down to _DARK (its densest) times the colour.
_OPAQUE = 64.0
_LIGHT = 1.15
_DARK = 0.8


def colourise(images: np.ndarray, rgb: tuple[int, int, int]) -> np.ndarray:
    """Grayscale garments ([..., H, W] uint8, bright on black) -> [..., H, W, 3] uint8 photos in `rgb`.

    The garment takes the colour, shaded by its own pixels so seams and folds stay visible, on
    the light BACKGROUND; dark colours stand out against it, light ones by their shading.
    """
    images = np.asarray(images, dtype=np.uint8)
    if images.ndim == 2:
        return _palette(tuple(rgb), max(int(images.max()), 1))[images]
    flat = images.reshape(-1, *images.shape[-2:])
    photos = [_palette(tuple(rgb), max(int(image.max()), 1))[image] for image in flat]
    return np.stack(photos).reshape(*images.shape, 3) if photos else np.zeros((*images.shape, 3), np.uint8)


@lru_cache(maxsize=8192)
def _palette(rgb: tuple[int, ...], peak: int) -> np.ndarray:
    """[256, 3] uint8: the photo colour of each pixel value of an image whose brightest pixel is `peak`."""
    levels = np.arange(256, dtype=np.float32)
    alpha = np.minimum(levels / _OPAQUE, 1.0)[:, None]
    shade = (_LIGHT - (_LIGHT - _DARK) * np.minimum(levels / peak, 1.0))[:, None]
    garment = np.minimum(np.asarray(rgb, dtype=np.float32) * shade, 255.0)
    background = np.asarray(BACKGROUND, dtype=np.float32)
    palette = np.rint(background * (1.0 - alpha) + garment * alpha).astype(np.uint8)
    palette.flags.writeable = False  # shared by every caller through the cache
    return palette


def upscale(image: np.ndarray, size: int = PHOTO_SIZE) -> np.ndarray:
    """A [28, 28] uint8 image resized to [size, size] (bicubic)."""
    return np.asarray(Image.fromarray(np.asarray(image, dtype=np.uint8), "L").resize((size, size), Image.BICUBIC))


def render(image: np.ndarray, colour: str) -> np.ndarray:
    """The [64, 64, 3] photo of a Fashion-MNIST image in a colour_group_name (KeyError if not in COLOUR_RGB)."""
    return colourise(upscale(image), COLOUR_RGB[colour])


def held_out_images(colour: str | None = None, source: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST's test split, which no catalogue photo comes from, and its labels.

    Grayscale [N, 28, 28] as stored; with `colour`, every image rendered as a catalogue photo
    in it ([N, 64, 64, 3]) for image queries. `source`: the Fashion-MNIST folder (default: fetched).
    """
    images, labels = load_split("test", source)
    if colour is None:
        return images, labels
    rgb = COLOUR_RGB[colour]
    return colourise(np.stack([upscale(image) for image in images]), rgb), labels


def source_pick(article_id: str, candidates: int) -> int:
    """Which of `candidates` images an article shows: stable across runs and machines, shared by its product."""
    if candidates <= 0:
        raise ValueError("no candidate images")
    product_code = normalise_article_id(article_id)[:PRODUCT_CODE_DIGITS]
    digest = hashlib.blake2b(f"atelier-article-photo:{product_code}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % candidates


class ArticlePhotos:
    """Catalogue photos drawn from Fashion-MNIST's train split only."""

    def __init__(self, source: Path | None = None) -> None:
        self.images, labels = load_split("train", source)
        self._by_class = {label: np.flatnonzero(labels == label) for label in CLASS_TYPES}

    def source_index(self, article_id: str, product_type: str) -> int | None:
        """The train-split index of the article's photo, or None for a type without a counterpart."""
        label = TYPE_CLASSES.get(product_type)
        if label is None or not len(candidates := self._by_class[label]):
            return None
        return int(candidates[source_pick(article_id, len(candidates))])

    def photo(self, article_id: str, product_type: str, colour: str) -> np.ndarray | None:
        """The article's [64, 64, 3] photo, or None for a type or colour without one."""
        index = self.source_index(article_id, product_type)
        if index is None or colour not in COLOUR_RGB:
            return None
        return render(self.images[index], colour)


def with_images_folder(dataset: HMDataset) -> HMDataset:
    """The dataset with its `images` folder set (directory/images when it had none)."""
    if dataset.images is not None:
        return dataset
    return dataclasses.replace(dataset, images=dataset.directory / IMAGES_DIR)


def write_article_images(dataset: HMDataset, source: Path | None = None, quality: int = JPEG_QUALITY) -> int:
    """Writes the photo of every article in the dataset's articles.csv that has none; the number written.

    Into `dataset.images` (default directory/images, created); existing files are kept, so an
    interrupted run resumes and a rerun writes nothing. Each file appears whole (written aside,
    then renamed). Articles of a type outside TYPE_CLASSES or a colour outside COLOUR_RGB get no
    photo. `source`: the Fashion-MNIST folder (default: fetched on first need).
    """
    target = with_images_folder(dataset)
    pending = []
    for article in iter_articles(dataset.articles):
        if article.product_type not in TYPE_CLASSES or article.colour not in COLOUR_RGB:
            continue
        path = target.image_path(article.article_id)
        if path is not None and not path.exists():
            pending.append((article, path))
    # Fashion-MNIST first: a failed fetch leaves no empty images folder behind.
    photos = ArticlePhotos(source) if pending else None
    assert target.images is not None
    target.images.mkdir(parents=True, exist_ok=True)
    if photos is None:
        return 0
    folders: set[Path] = set()
    suffix = f".{os.getpid()}.partial"
    written = 0
    for article, path in pending:
        photo = photos.photo(article.article_id, article.product_type, article.colour)
        if photo is None:
            continue
        if path.parent not in folders:
            path.parent.mkdir(exist_ok=True)
            folders.add(path.parent)
        partial = path.with_name(path.name + suffix)
        Image.fromarray(photo, "RGB").save(partial, "JPEG", quality=quality)
        os.replace(partial, path)
        written += 1
    return written
