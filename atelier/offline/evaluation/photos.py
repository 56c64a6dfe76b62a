"""Query photos for image search: Fashion-MNIST's held-out test split rendered as catalogue photos.

No catalogue photo is drawn from the test split (atelier/offline/catalog/article_images.py), so a query
photo is never a copy of an indexed one. Choice and colour are seeded: a rerun asks the same.
Shared by `atelier eval` and the benchmarks.
"""

from __future__ import annotations

import io
import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from atelier.offline.catalog.article_images import CLASS_TYPES, COLOUR_RGB, held_out_images, render


@dataclass(frozen=True)
class QueryPhoto:
    index: int  # into the held-out split
    label: int  # its Fashion-MNIST class
    colour: str  # a COLOUR_RGB colour_group_name it is rendered in


def choose_photos(labels: np.ndarray, per_class: int, seed: int) -> list[QueryPhoto]:
    """`per_class` held-out photos of each class that has catalogue types, each in a random colour."""
    rng = random.Random(seed)
    colours = list(COLOUR_RGB)
    chosen = []
    for label in CLASS_TYPES:
        indices = np.flatnonzero(labels == label).tolist()
        for index in sorted(rng.sample(indices, min(per_class, len(indices)))):
            chosen.append(QueryPhoto(index, label, rng.choice(colours)))
    return chosen


def encode(image: np.ndarray, colour: str, image_format: str = "PNG") -> bytes:
    """The [28, 28] Fashion-MNIST image as a catalogue-style photo file in `colour`."""
    buffer = io.BytesIO()
    Image.fromarray(render(image, colour), "RGB").save(buffer, format=image_format)
    return buffer.getvalue()


def photo_bytes(images: np.ndarray, photos: Sequence[QueryPhoto]) -> list[bytes]:
    return [encode(images[photo.index], photo.colour) for photo in photos]


def held_out_photos(per_class: int, seed: int) -> tuple[list[QueryPhoto], list[bytes]]:
    """`per_class` held-out query photos of each class (choose_photos), and their PNG files.

    Raises FashionMnistUnavailable when Fashion-MNIST is not here and cannot be fetched.
    """
    images, labels = held_out_images()
    photos = choose_photos(labels, per_class, seed)
    return photos, photo_bytes(images, photos)
