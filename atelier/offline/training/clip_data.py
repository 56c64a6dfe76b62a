"""The CLIP model's training data: catalogue photos, captions from the article's fields, a held-out split.

Only the catalogue's own photos are used (`HMDataset.image_path`); articles without one are
skipped. Each photo has a few captions, one per template of CAPTION_TEMPLATES whose fields the
article fills; training draws one per photo and step. The held-out articles are whole products
(every colour variant of a product code): the synthetic catalogue shows a product's variants as
the same garment in other colours, which would otherwise leak into the check.

Photos are decoded by the Triton clip_image model's own `decode_image` and resized and cropped
by the checkpoint's image processor, once, into a uint8 tensor; training then only rescales and
normalises them (`normalise`), which is the processor's remaining work, as tensor operations.
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from atelier.inference.clip_image import decode_image
from atelier.offline.catalog.hm_loader import HMDataset, LoadReport, iter_article_rows
from atelier.offline.catalog.schema import PRODUCT_CODE_DIGITS

# name -> format over articles.csv columns. "{perceived_colour_master_name}" is the colour
# family ("Blue" for "Dark Blue"), which a shopper names as often as the exact colour.
CAPTION_TEMPLATES: dict[str, str] = {
    "colour_family_type": "{perceived_colour_master_name} {product_type_name}",
    "name": "{prod_name}",
    "appearance_colour_type": "{graphical_appearance_name} {colour_group_name} {product_type_name}",
    "colour_name": "{colour_group_name} {prod_name}",
}
# The held-out check's captions: what the picture shows, one attribute of each kind.
EVAL_TEMPLATE = "colour_family_type"
# Values H&M uses for "not known"; a template needing one is left out for that article.
UNKNOWN_VALUES = frozenset({"", "unknown", "undefined", "-1"})


@dataclass(frozen=True)
class CaptionedPhoto:
    article_id: str
    image: Path
    captions: tuple[str, ...]  # of the templates this article fills, in CAPTION_TEMPLATES order
    eval_caption: str | None  # EVAL_TEMPLATE's, None when the article lacks its fields
    colour_family: str
    product_type: str

    @property
    def product_code(self) -> str:
        return self.article_id[:PRODUCT_CODE_DIGITS]


@dataclass(frozen=True)
class PhotoCatalogue:
    photos: tuple[CaptionedPhoto, ...]
    articles: int  # valid articles read, with a photo or not


def _fields(template: str) -> list[str]:
    return [field for _, field, _, _ in string.Formatter().parse(template) if field]


def caption(template: str, row: dict[str, str]) -> str | None:
    """``template`` filled from an articles.csv row, or None when a field it needs is empty or unknown."""
    values = {field: " ".join(row.get(field, "").split()) for field in _fields(template)}
    if any(value.casefold() in UNKNOWN_VALUES for value in values.values()):
        return None
    return template.format(**values)


def captions(row: dict[str, str]) -> tuple[str, ...]:
    """Every template's caption this article fills, duplicates dropped, in CAPTION_TEMPLATES order."""
    filled = (caption(template, row) for template in CAPTION_TEMPLATES.values())
    return tuple(dict.fromkeys(text for text in filled if text))


def photo_catalogue(dataset: HMDataset, report: LoadReport | None = None) -> PhotoCatalogue:
    """The dataset's articles that have a photo file (and a caption), with their captions, in articles.csv order."""
    photos, articles = [], 0
    for row in iter_article_rows(dataset.articles, report):
        articles += 1
        path = dataset.image_path(row["article_id"])
        texts = captions(row)
        if path is None or not texts or not path.is_file():
            continue
        photos.append(
            CaptionedPhoto(
                article_id=row["article_id"],
                image=path,
                captions=texts,
                eval_caption=caption(CAPTION_TEMPLATES[EVAL_TEMPLATE], row),
                colour_family=row["perceived_colour_master_name"].strip(),
                product_type=row["product_type_name"].strip(),
            )
        )
    return PhotoCatalogue(tuple(photos), articles)


def split(
    photos: Sequence[CaptionedPhoto], validation: int, seed: int, max_train: int = 0
) -> tuple[list[CaptionedPhoto], list[CaptionedPhoto]]:
    """(training, held-out) photos: whole products, drawn by the seed, until at least ``validation``
    photos are held out; ``max_train`` > 0 keeps a seeded sample of that many for training.

    Both keep the input order.
    """
    codes = sorted({photo.product_code for photo in photos})
    random.Random(f"clip-split:{seed}").shuffle(codes)
    per_code: dict[str, int] = {}
    for photo in photos:
        per_code[photo.product_code] = per_code.get(photo.product_code, 0) + 1
    held_codes: set[str] = set()
    held = 0
    for code in codes:
        if held >= validation:
            break
        held_codes.add(code)
        held += per_code[code]
    training = [photo for photo in photos if photo.product_code not in held_codes]
    if 0 < max_train < len(training):
        keep = set(random.Random(f"clip-sample:{seed}").sample(range(len(training)), max_train))
        training = [photo for i, photo in enumerate(training) if i in keep]
    return training, [photo for photo in photos if photo.product_code in held_codes]


def load_pixels(
    paths: Sequence[Path], processor: Any, log: Callable[[str], None] = print
) -> tuple[torch.Tensor, list[int]]:
    """([n, 3, size, size] uint8 of the photos that decode, their indices in ``paths``).

    Each photo is decoded as clip_image decodes a request, then resized and cropped by
    ``processor`` (without its rescaling and normalisation, which `normalise` does).
    """
    crop = processor.crop_size
    pixels = torch.empty((len(paths), 3, crop["height"], crop["width"]), dtype=torch.uint8)
    kept: list[int] = []
    for index, path in enumerate(paths):
        try:
            image = decode_image(path.read_bytes(), index)
        except (OSError, ValueError) as exc:
            log(f"skipped {path}: {exc}")
            continue
        array = processor(images=image, do_rescale=False, do_normalize=False, return_tensors="np")["pixel_values"][0]
        pixels[len(kept)] = torch.from_numpy(np.asarray(array, dtype=np.uint8))
        kept.append(index)
    return pixels[: len(kept)].clone(), kept


def normalise(pixels: torch.Tensor, processor: Any) -> torch.Tensor:
    """uint8 [n, 3, h, w] to the model's float input: the processor's rescale then normalise."""
    mean = torch.tensor(processor.image_mean, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(processor.image_std, dtype=torch.float32).view(1, 3, 1, 1)
    return (pixels.to(torch.float32) * processor.rescale_factor - mean) / std
