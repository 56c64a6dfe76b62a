"""Article photos from Fashion-MNIST: the type table, colours, a stable pick, H&M's layout, the held-out split."""

from __future__ import annotations

import csv
import gzip
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from atelier.offline.catalog import fashion_mnist
from atelier.offline.catalog.article_images import (
    BACKGROUND,
    CLASS_TYPES,
    COLOUR_RGB,
    PHOTO_SIZE,
    TYPE_CLASSES,
    ArticlePhotos,
    colourise,
    held_out_images,
    render,
    source_pick,
    write_article_images,
)
from atelier.offline.catalog.fashion_mnist import (
    CLASS_NAMES,
    FashionMnistUnavailable,
    ensure_fashion_mnist,
    load_split,
    read_idx,
)
from atelier.offline.catalog.hm_loader import HMDataset, find_hm_dataset, iter_articles
from atelier.offline.catalog.schema import ARTICLE_COLUMNS
from atelier.offline.catalog.synthetic import generate_articles, write_synthetic_catalog
from atelier.offline.catalog.vocabulary import COLOURS, PRODUCT_TYPES_BY_NAME

TRAIN_PER_CLASS = 5
TEST_PER_CLASS = 2


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(size.to_bytes(4, "big") for size in array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def _garments(per_class: int, columns: slice) -> tuple[np.ndarray, np.ndarray]:
    """Solid garments, brightness varying by image, on the given columns only (train: left, test: right)."""
    labels = np.repeat(np.arange(len(CLASS_NAMES), dtype=np.uint8), per_class)
    images = np.zeros((len(labels), 28, 28), dtype=np.uint8)
    for number in range(len(labels)):
        images[number, 4:24, columns] = 120 + number % 120
    return images, labels


@pytest.fixture
def fake_mnist(tmp_path: Path) -> Path:
    """A tiny Fashion-MNIST in the package's file layout: train garments on the left, test ones on the right."""
    folder = tmp_path / "fashion-mnist"
    folder.mkdir()
    for split, per_class, columns in (
        ("train", TRAIN_PER_CLASS, slice(2, 13)),
        ("t10k", TEST_PER_CLASS, slice(15, 26)),
    ):
        images, labels = _garments(per_class, columns)
        _write_idx(folder / f"{split}-images-idx3-ubyte.gz", images)
        _write_idx(folder / f"{split}-labels-idx1-ubyte.gz", labels)
    return folder


def _garment_mean(photo: np.ndarray) -> np.ndarray:
    """Mean RGB of the photo's middle."""
    return photo[20:44, 20:44].reshape(-1, 3).mean(axis=0)


def _write_articles(path: Path, rows: list[dict[str, str]]) -> HMDataset:
    path.mkdir(parents=True, exist_ok=True)
    with (path / "articles.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, ARTICLE_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    dataset = find_hm_dataset(path)
    assert dataset is not None
    return dataset


def test_type_table_names_only_catalogue_types_and_covers_every_class() -> None:
    assert set(TYPE_CLASSES) <= set(PRODUCT_TYPES_BY_NAME)
    assert set(TYPE_CLASSES.values()) == set(range(len(CLASS_NAMES)))
    assert set(CLASS_TYPES) == set(range(len(CLASS_NAMES)))
    for label, names in CLASS_TYPES.items():
        assert all(TYPE_CLASSES[name] == label for name in names)
    for without in ("Socks", "Earring", "Bra", "Scarf", "Belt", "Sunglasses"):
        assert without not in TYPE_CLASSES


def test_every_catalogue_colour_has_an_rgb() -> None:
    assert {colour.name for colour in COLOURS} == set(COLOUR_RGB)


def test_the_article_colour_shows_on_a_light_background() -> None:
    garment = np.zeros((28, 28), dtype=np.uint8)
    garment[4:24, 6:22] = 180
    garment[10, 6:22] = 250  # a seam: texture survives
    red, blue, black = (_garment_mean(render(garment, name)) for name in ("Red", "Blue", "Black"))
    assert red[0] > red[2] + 100 and red[0] > red[1] + 100
    assert blue[2] > blue[0] + 100
    background = np.asarray(BACKGROUND, dtype=float)
    assert background.mean() > 200
    for dark in ("Black", "Dark Blue", "Dark Grey", "Dark Green", "Brown"):
        assert _garment_mean(render(garment, dark)).mean() < background.mean() - 100, dark
    assert black.mean() < 60
    photo = render(garment, "White")
    assert photo.shape == (PHOTO_SIZE, PHOTO_SIZE, 3) and photo.dtype == np.uint8
    assert tuple(photo[0, 0]) == BACKGROUND  # no garment, the backdrop
    assert len({tuple(pixel) for pixel in photo[20:44, 32]}) > 1  # the seam shades the white garment
    batch = colourise(np.stack([garment, garment]), COLOUR_RGB["Red"])
    assert batch.shape == (2, 28, 28, 3) and (batch[0] == colourise(garment, COLOUR_RGB["Red"])).all()


def test_the_pick_is_stable_and_shared_by_a_products_colour_variants() -> None:
    # Pinned: a blake2b of the product code, the same on every machine and Python (not hash()).
    assert source_pick("0108775015", 6000) == 3182
    assert source_pick("108775001", 6000) == source_pick("0108775015", 6000)
    picks = {source_pick(f"{code:07d}001", 10) for code in range(108_775, 108_975)}
    assert len(picks) == 10
    with pytest.raises(ValueError):
        source_pick("0108775015", 0)


def test_photos_are_written_in_the_h_and_m_layout_and_a_rerun_keeps_them(tmp_path: Path, fake_mnist: Path) -> None:
    dataset = write_synthetic_catalog(tmp_path / "catalog", n_articles=300, n_transactions=0)
    assert dataset.images is None
    written = write_article_images(dataset, source=fake_mnist)
    articles = list(iter_articles(dataset.articles))
    expected = [article for article in articles if article.product_type in TYPE_CLASSES]
    assert written == len(expected) > 100
    found = find_hm_dataset(dataset.directory)
    assert found is not None and found.images == dataset.directory / "images"
    first = expected[0].article_id
    path = found.image_path(first)
    assert path == dataset.directory / "images" / first[:3] / f"{first}.jpg"
    with Image.open(path) as image:
        assert (image.format, image.mode, image.size) == ("JPEG", "RGB", (PHOTO_SIZE, PHOTO_SIZE))
    assert sorted(found.images.rglob("*.jpg")) == sorted(found.image_path(a.article_id) for a in expected)
    assert not list(found.images.rglob("*.partial"))

    before = path.stat().st_mtime_ns
    assert write_article_images(found, source=fake_mnist) == 0
    assert path.stat().st_mtime_ns == before
    path.unlink()
    assert write_article_images(found, source=fake_mnist) == 1


def test_types_and_colours_without_a_photo_are_skipped(tmp_path: Path, fake_mnist: Path) -> None:
    template = next(generate_articles(1))
    rows = [
        {**template, "article_id": "0100000001", "product_type_name": "T-shirt", "colour_group_name": "Red"},
        {**template, "article_id": "0100000002", "product_type_name": "Socks", "colour_group_name": "Red"},
        {**template, "article_id": "0100001001", "product_type_name": "Earring", "colour_group_name": "Gold"},
        {**template, "article_id": "0100002001", "product_type_name": "Boots", "colour_group_name": "Transparent"},
    ]
    dataset = _write_articles(tmp_path / "catalog", rows)
    assert write_article_images(dataset, source=fake_mnist) == 1
    images = tmp_path / "catalog" / "images"
    assert [path.name for path in images.rglob("*.jpg")] == ["0100000001.jpg"]
    with Image.open(images / "010" / "0100000001.jpg") as image:
        red = np.asarray(image, dtype=float)[12:52, 8:28].reshape(-1, 3).mean(axis=0)  # where train garments are
    assert red[0] > red[2] + 100


def test_catalogue_photos_come_from_the_train_split_only(tmp_path: Path, fake_mnist: Path) -> None:
    train_images, train_labels = load_split("train", fake_mnist)
    test_images, test_labels = load_split("test", fake_mnist)
    held_images, held_labels = held_out_images(source=fake_mnist)
    assert (held_images == test_images).all() and (held_labels == test_labels).all()
    coloured, labels = held_out_images(colour="Red", source=fake_mnist)
    assert coloured.shape == (len(test_images), PHOTO_SIZE, PHOTO_SIZE, 3) and (labels == test_labels).all()

    photos = ArticlePhotos(fake_mnist)
    assert photos.images is train_images
    for article in generate_articles(400):
        index = photos.source_index(article["article_id"], article["product_type_name"])
        if article["product_type_name"] not in TYPE_CLASSES:
            assert index is None
            continue
        assert index is not None and 0 <= index < len(train_images)
        assert train_labels[index] == TYPE_CLASSES[article["product_type_name"]]

    # Written photos show train garments (left half), never test ones (right half).
    dataset = write_synthetic_catalog(tmp_path / "catalog", n_articles=200, n_transactions=0)
    assert write_article_images(dataset, source=fake_mnist) > 50
    background = np.asarray(BACKGROUND, dtype=float)
    for path in (dataset.directory / "images").rglob("*.jpg"):
        with Image.open(path) as image:
            photo = np.asarray(image, dtype=float)
        left = np.abs(photo[10:54, 8:28] - background).mean()
        right = np.abs(photo[10:54, 38:60] - background).mean()
        assert left > 15 and right < 5, (path, left, right)


def test_synthetic_catalogue_with_images(tmp_path: Path, fake_mnist: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fashion_mnist, "ensure_fashion_mnist", lambda dest=None: fake_mnist)
    dataset = write_synthetic_catalog(tmp_path, n_articles=100, n_transactions=10, images=True)
    assert dataset.images == tmp_path / "images"
    assert dataset == find_hm_dataset(tmp_path)
    assert any(dataset.images.rglob("*.jpg"))


def test_without_apt_get_the_error_says_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fashion_mnist, "SYSTEM_DIR", tmp_path / "not-installed")
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(FashionMnistUnavailable, match="apt-get and dpkg-deb not found"):
        ensure_fashion_mnist(tmp_path / "dest")
    assert not (tmp_path / "dest").exists()


def test_fetched_files_are_used_without_fetching_again(fake_mnist: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("shutil.which", lambda name: None)
    assert ensure_fashion_mnist(fake_mnist) == fake_mnist


def test_idx_files_are_checked(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gz"
    with gzip.open(bad, "wb") as handle:
        handle.write(b"\x00\x00\x0d\x01\x00\x00\x00\x01abcd")  # float IDX
    with pytest.raises(ValueError, match="unsigned-byte IDX"):
        read_idx(bad)
    short = tmp_path / "short"
    short.write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 5, 1, 2]))
    with pytest.raises(ValueError, match="header says"):
        read_idx(short)
    with pytest.raises(ValueError, match="split must be"):
        load_split("validation", tmp_path)  # type: ignore[arg-type]


def _fetched() -> Path | None:
    for folder in (fashion_mnist.DEFAULT_DIR, fashion_mnist.SYSTEM_DIR):
        if all((folder / name).is_file() for pair in fashion_mnist.FILES.values() for name in pair):
            return folder
    return None


@pytest.mark.skipif(_fetched() is None, reason="Fashion-MNIST not fetched (atelier catalog load fetches it)")
def test_the_real_fashion_mnist() -> None:
    folder = _fetched()
    train_images, train_labels = load_split("train", folder)
    test_images, test_labels = load_split("test", folder)
    assert train_images.shape == (60_000, 28, 28) and test_images.shape == (10_000, 28, 28)
    assert np.bincount(train_labels).tolist() == [6_000] * 10
    assert np.bincount(test_labels).tolist() == [1_000] * 10
    assert train_images.dtype == np.uint8 and train_images[:, 0, 0].max() < 50  # garment on black
