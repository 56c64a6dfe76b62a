"""`atelier catalog load`: from the H&M files when present, else the seeded synthetic catalogue."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from atelier.serving.settings import ROOT, CollectionLayout, Endpoints, Settings, Vision

if TYPE_CHECKING:
    from atelier.offline.catalog.hm_loader import HMDataset


class CatalogSettings(Settings):
    """Settings of `atelier catalog load` (and the commands that read the same catalogue)."""

    model_config = SettingsConfigDict(env_prefix="ATELIER_")

    hm_dir: Path = ROOT / "data" / "hm"
    """The Kaggle H&M files (articles.csv, transactions_train.csv, images/) when present; otherwise the
    seeded synthetic catalogue is generated into data/synthetic."""
    vision: Vision = Field(default_factory=Vision)
    milvus: CollectionLayout = Field(default_factory=CollectionLayout)
    """The layout of the collections it creates (and `atelier models publish` creates)."""


HM_DIR = CatalogSettings.from_env().hm_dir
SYNTHETIC_DIR = ROOT / "data" / "synthetic"
DEMO_ARTICLES = 3000
FULL_ARTICLES = 105_542


def add_parser(commands: argparse._SubParsersAction) -> None:
    catalog = commands.add_parser("catalog", help="load the article catalogue").add_subparsers(
        dest="catalog_command", required=True
    )
    load = catalog.add_parser("load", help="embed articles into Milvus, metadata into Redis, seed popularity")
    add_dataset_arguments(load)
    load.add_argument("--force", action="store_true", help="re-embed every article")
    load.add_argument("--if-empty", action="store_true", help="do nothing when a catalogue is already loaded")
    load.set_defaults(run=run_load)


def _items_in_redis(endpoints: Endpoints) -> bool:
    from atelier.serving import item_store, redis_clients

    async def any_article() -> str | None:
        client = redis_clients.async_client(endpoints)
        try:
            return await item_store.any_article_id(client)
        finally:
            await client.aclose()

    return asyncio.run(any_article()) is not None


def _loaded_articles(endpoints: Endpoints, collection: str) -> int:
    from pymilvus import MilvusClient

    client = MilvusClient(uri=endpoints.milvus_uri)
    try:
        if not client.has_collection(collection):
            return 0
        return int(client.get_collection_stats(collection).get("row_count", 0))
    finally:
        client.close()


def vision_on(endpoints: Endpoints) -> bool:
    """VISION_ENABLED when set, else whether the running Triton serves the CLIP image tower."""
    chosen = CatalogSettings.from_env().vision.chosen("enabled")
    if chosen is not None:
        return chosen
    import tritonclient.grpc as triton

    client = triton.InferenceServerClient(endpoints.triton_address)
    try:
        from atelier.serving.vision import IMAGE_MODEL

        return bool(client.is_model_ready(IMAGE_MODEL, client_timeout=5))
    except Exception:  # noqa: BLE001 - no answer: no vision
        return False
    finally:
        client.close()


def add_dataset_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags that choose a catalogue, shared by every command that reads one."""
    parser.add_argument(
        "--source",
        help=f"an H&M directory with articles.csv (default: {HM_DIR} if present, else the synthetic catalogue)",
    )
    parser.add_argument("--synthetic", action="store_true", help="use the synthetic catalogue even if H&M files exist")
    parser.add_argument("--articles", type=int, default=FULL_ARTICLES, help="synthetic catalogue size")
    parser.add_argument("--demo", action="store_true", help=f"a small synthetic catalogue ({DEMO_ARTICLES} articles)")
    parser.add_argument("--seed", type=int, default=7, help="synthetic catalogue seed")


def choose_dataset(args: argparse.Namespace, reuse_synthetic: bool = False, images: bool = False) -> HMDataset:
    """The H&M files when present (or named), else the seeded synthetic catalogue, written on first use.

    ``reuse_synthetic`` keeps a synthetic catalogue already written for the same size and seed
    instead of writing it again (about 20 s for the full size). ``images`` also gives the
    synthetic catalogue its article photos (those missing), unless Fashion-MNIST cannot be fetched.
    """
    from atelier.offline.catalog.hm_loader import find_hm_dataset
    from atelier.offline.catalog.synthetic import write_synthetic_catalog

    source = Path(args.source) if args.source else HM_DIR
    dataset = None if args.synthetic else find_hm_dataset(source)
    if dataset is None:
        if args.source:
            raise SystemExit(f"no articles.csv in {source}")
        n = DEMO_ARTICLES if args.demo else args.articles
        directory = SYNTHETIC_DIR / f"articles-{n}-seed-{args.seed}"
        print(f"synthetic catalogue: {n} articles, seed {args.seed} -> {directory}")
        existing = find_hm_dataset(directory) if reuse_synthetic else None
        if existing is None or existing.transactions is None:
            existing = write_synthetic_catalog(directory, n_articles=n, n_transactions=10 * n, seed=args.seed)
        return _with_photos(existing) if images else existing
    print(f"H&M catalogue: {dataset.articles}")
    return dataset


def _with_photos(dataset: HMDataset) -> HMDataset:
    """The synthetic catalogue with its article photos written; as it was when Fashion-MNIST is unavailable."""
    from atelier.offline.catalog.article_images import with_images_folder, write_article_images
    from atelier.offline.catalog.fashion_mnist import FashionMnistUnavailable

    try:
        written = write_article_images(dataset)
    except FashionMnistUnavailable as error:
        print(f"no article photos: {error}")
        return dataset
    dataset = with_images_folder(dataset)
    print(f"article photos: {written} written -> {dataset.images}")
    return dataset


def run_load(args: argparse.Namespace) -> int:
    # Imported here: `atelier up` and friends should not pay for the catalogue's imports.
    from atelier.offline.catalog.bootstrap import LoadSettings, load_articles, record_catalogue, seed_popularity
    from atelier.offline.catalog.hm_loader import LoadReport, iter_articles, iter_transactions
    from atelier.serving import redis_clients
    from atelier.serving.article_index import IMAGE_COLLECTION, TEXT_COLLECTION

    endpoints = Endpoints.from_env()
    vision = vision_on(endpoints)
    # Loaded means both in Milvus and in Redis' current key schema (after an upgrade that moved the keys, a
    # load again writes Redis' part; the embeddings, unchanged, are not computed again).
    if args.if_empty and (loaded := _loaded_articles(endpoints, TEXT_COLLECTION)) and _items_in_redis(endpoints):
        if not vision or _loaded_articles(endpoints, IMAGE_COLLECTION):
            print(f"catalogue already loaded ({loaded} articles); skipping")
            # A catalogue loaded before its files were recorded: recorded now, for re-indexes and the first run.
            record_catalogue(endpoints, choose_dataset(args, images=True))
            return 0
    dataset = choose_dataset(args, images=True)
    report = LoadReport(source=str(dataset.articles))
    total = sum(1 for _ in dataset.articles.open(encoding="utf-8", errors="replace")) - 1
    result = asyncio.run(
        load_articles(iter_articles(dataset.articles, report), total, endpoints, LoadSettings(force=args.force))
    )
    record_catalogue(endpoints, dataset)  # what a re-index (`atelier models publish`) embeds again
    print(report.summary())
    print(
        f"{result.articles} articles ({result.embedded} embedded, {result.skipped_unchanged} unchanged) "
        f"in {result.seconds:.1f}s, {result.rate:.0f} embedded/s, dimension {result.dimension}"
    )
    if dataset.transactions is not None:
        transactions_report = LoadReport(source=str(dataset.transactions))
        store = redis_clients.sync_client(endpoints)
        try:
            seeded = seed_popularity(store, iter_transactions(dataset.transactions, transactions_report))
        finally:
            store.close()
        print(transactions_report.summary())
        print(f"popularity seeded for {seeded} articles")
    if not vision:
        print("vision off: no image collection (image and hybrid search need the CLIP models)")
    elif dataset.images is None:
        print(f"vision on, but {dataset.directory} has no images folder: no image collection")
    else:
        _load_images(dataset, total, endpoints, args.force)
    return 0


def _load_images(dataset: HMDataset, total: int, endpoints: Endpoints, force: bool) -> None:
    from atelier.offline.catalog.bootstrap import LoadSettings, load_articles
    from atelier.offline.catalog.contents import ImageContent
    from atelier.offline.catalog.hm_loader import LoadReport, iter_articles
    from atelier.serving.article_index import IMAGE_COLLECTION, IndexSettings
    from atelier.serving.vision import ClipEncoder

    settings = LoadSettings(index=IndexSettings(collection=IMAGE_COLLECTION), force=force)
    content = ImageContent(
        ClipEncoder(endpoints.triton_address, timeout_s=settings.embed_timeout_s), dataset.image_path
    )
    result = asyncio.run(
        load_articles(iter_articles(dataset.articles, LoadReport()), total, endpoints, settings, content)
    )
    print(
        f"{IMAGE_COLLECTION}: {result.embedded} photos embedded, {result.skipped_unchanged} unchanged, "
        f"{result.without_content} articles without a photo, in {result.seconds:.1f}s, dimension {result.dimension}"
    )
    for path in content.unreadable[:10]:
        print(f"  unreadable photo left out: {path}")
    if len(content.unreadable) > 10:
        print(f"  ... {len(content.unreadable) - 10} more unreadable photos left out")
