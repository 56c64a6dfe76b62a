"""The real stack, started once for the integration tests on ports of its own."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from atelier.offline.catalog.bootstrap import (
    LoadResult,
    LoadSettings,
    load_articles,
    record_catalogue,
    seed_popularity,
)
from atelier.offline.catalog.contents import ImageContent
from atelier.offline.catalog.hm_loader import HMDataset, LoadReport, iter_articles, iter_transactions
from atelier.offline.catalog.synthetic import write_synthetic_catalog
from atelier.serving import redis_clients
from atelier.serving.article_index import IMAGE_COLLECTION, IndexSettings
from atelier.serving.settings import ROOT
from atelier.serving.vision import ClipEncoder
from atelier.stack.launcher import Stack

# Beside a developer's running stack (default ports), never on top of it. Two test runs side
# by side (parallel work on one machine) each set ATELIER_TEST_PORT_OFFSET and ATELIER_TEST_STATE_DIR.
DEFAULT_TEST_PORT_OFFSET = 1000
TEST_PORT_OFFSET = int(os.environ.get("ATELIER_TEST_PORT_OFFSET", str(DEFAULT_TEST_PORT_OFFSET)))
# The gRPC services' conventional ports (5005x) sit in Linux's ephemeral range (32768-60999),
# where any outgoing connection may already hold one when a service (re)starts; the test stack
# moves them down to 2xxxx. Test-only servers use 27xxx for the same reason.
BELOW_EPHEMERAL = 30_000


def offset_ports(*ports: int) -> tuple[int, ...]:
    """A test's own servers' ports (27xxx at the default offset), moved with ATELIER_TEST_PORT_OFFSET as the
    test stack's are, so that two test runs side by side do not share them."""
    return tuple(port + TEST_PORT_OFFSET - DEFAULT_TEST_PORT_OFFSET for port in ports)


TEST_STACK_ENV = {
    "ATELIER_PORT_OFFSET": str(TEST_PORT_OFFSET),
    **{
        f"ATELIER_{service}_PORT": str(default - BELOW_EPHEMERAL + TEST_PORT_OFFSET)
        for service, default in (("SEARCH", 50051), ("RANKER", 50052), ("FEATURES", 50053))
    },
    "ATELIER_STATE_DIR": os.environ.get("ATELIER_TEST_STATE_DIR", str(ROOT / "build" / "test-stack")),
    # Reranking with trained weights only: a short training run ranks worse than ANN (see
    # README, "Reranker weights"), so by default the test stack runs without a reranker, as
    # `make up` does before `atelier models train-reranker`. ATELIER_TEST_RERANK_MODEL_DIR=models/reranker
    # runs the reranked-search tests too.
    "ATELIER_RERANK_MODEL_DIR": os.environ.get("ATELIER_TEST_RERANK_MODEL_DIR", str(ROOT / "build" / "no-reranker")),
    # `make test` trains nothing in the background (test_model_versions.py publishes its own stand-ins).
    "ATELIER_FIRST_RUN_TRAINING": "0",
    # Without one, search does not wait for a reranker that never comes: the answers the tests
    # check carry no "still being prepared" degradation (test_model_versions.py runs a search that waits).
    "SEARCH_RERANK_ENABLED": "1" if "ATELIER_TEST_RERANK_MODEL_DIR" in os.environ else "0",
    # Tests assert behaviour, not speed: a generous rerank budget keeps a busy CI machine from
    # turning reranked answers into degraded ones (the budget itself is unit-tested).
    "SEARCH_RERANK_BUDGET_S": "2",
    # Image embeddings on a busy 2-core CI machine: generous, as the rerank budget.
    "SEARCH_CLIP_TIMEOUT_S": "5",
    # Small photo limits, so the tests can go past them cheaply.
    "SEARCH_MAX_IMAGE_BYTES": str(1024 * 1024),
    "SEARCH_MAX_IMAGE_PIXELS": "4000000",
}
RERANKING = "ATELIER_TEST_RERANK_MODEL_DIR" in os.environ
# A CLIP model trained for the test session on the test catalogue's photos (about a minute), unless
# ATELIER_TEST_CLIP_MODEL_DIR names one (models/clip, say). Good enough to tell garment classes
# apart, which is all the image search tests ask of it.
QUICK_CLIP = {"patch_size": 16, "steps": 60, "batch_size": 128, "validation_articles": 100}


@pytest.fixture(scope="session")
def clip_weights(catalog_dataset: HMDataset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    given = os.environ.get("ATELIER_TEST_CLIP_MODEL_DIR")
    if given:
        return Path(given).resolve()
    from atelier.offline.training.clip import ClipSettings, train_clip
    from atelier.offline.training.clip_data import photo_catalogue

    out = tmp_path_factory.mktemp("clip") / "checkpoint"
    train_clip(photo_catalogue(catalog_dataset), str(catalog_dataset.articles), out, ClipSettings(**QUICK_CLIP))
    return out


@pytest.fixture(scope="session")
def stack(clip_weights: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    environment = {
        **TEST_STACK_ENV,
        "ATELIER_CLIP_MODEL_DIR": str(clip_weights),
        # A repository of this session's own: version 1 of each model from the weights above.
        "ATELIER_MODEL_REPOSITORY": str(tmp_path_factory.mktemp("model-repository")),
    }
    previous = {key: os.environ.get(key) for key in environment}
    os.environ.update(environment)
    stack = Stack.from_env(say=lambda line: print(line, flush=True))
    stack.down(quiet=True)  # leftovers of an interrupted run
    stack.up()
    try:
        yield stack
    finally:
        stack.down(quiet=True)
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


TEST_CATALOG_ARTICLES = 1500


@pytest.fixture(scope="session")
def catalog_dataset(tmp_path_factory: pytest.TempPathFactory) -> HMDataset:
    """The test catalogue, with its article photos (Fashion-MNIST's train split)."""
    return write_synthetic_catalog(
        tmp_path_factory.mktemp("catalog"),
        n_articles=TEST_CATALOG_ARTICLES,
        n_transactions=20_000,
        seed=11,
        images=True,
    )


def _load(stack: Stack, dataset: HMDataset) -> LoadResult:
    report = LoadReport()
    return asyncio.run(load_articles(iter_articles(dataset.articles, report), None, stack.endpoints, LoadSettings()))


def _load_images(stack: Stack, dataset: HMDataset) -> LoadResult:
    settings = LoadSettings(index=IndexSettings(collection=IMAGE_COLLECTION))
    content = ImageContent(ClipEncoder(stack.endpoints.triton_address, timeout_s=60), dataset.image_path)
    articles = iter_articles(dataset.articles, LoadReport())
    return asyncio.run(load_articles(articles, None, stack.endpoints, settings, content))


@pytest.fixture(scope="session")
def catalog(stack: Stack, catalog_dataset: HMDataset) -> int:
    """The synthetic test catalogue, loaded into the test stack; its article count."""
    result = _load(stack, catalog_dataset)
    _load_images(stack, catalog_dataset)
    record_catalogue(stack.endpoints, catalog_dataset)
    store = redis_clients.sync_client(stack.endpoints)
    try:
        seed_popularity(store, iter_transactions(catalog_dataset.transactions, LoadReport()))
    finally:
        store.close()
    time.sleep(3)  # the search service re-reads the known filter values every 2 s until it has some
    return result.articles


@pytest.fixture
def reload_catalog(stack: Stack, catalog_dataset: HMDataset) -> Callable[[], LoadResult]:
    return lambda: _load(stack, catalog_dataset)


@pytest.fixture(scope="session")
def article_ids(catalog_dataset: HMDataset, catalog: int) -> list[str]:
    """Ids of articles in the loaded test catalogue, in file order."""
    return [article.article_id for article in iter_articles(catalog_dataset.articles)][:100]
