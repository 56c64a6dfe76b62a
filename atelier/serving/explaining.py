"""Client of the Triton ``explainer`` model (atelier/inference/explainer.py).

The results of one answer go as one request, one FACTS row each, so the model writes their sentences
in one generation.
"""

from __future__ import annotations

from collections.abc import Sequence

from atelier.inference.signatures import EXPLAINER, EXPLANATION, FACTS
from atelier.serving.triton_client import ModelAdapter, TritonClient, strings

MODEL = EXPLAINER.model


class Explainer(ModelAdapter):
    def __init__(self, triton: TritonClient | str, model_name: str = MODEL, timeout_s: float = 3.0) -> None:
        super().__init__(triton, timeout_s)
        self.model_name = model_name

    async def explain(self, facts: Sequence[str], timeout_s: float | None = None) -> list[str]:
        """One generated sentence for each of `facts`."""
        if not facts:
            return []
        inputs = {FACTS: strings(list(facts))}
        answer = await self.triton.infer(self.model_name, inputs, [EXPLANATION], timeout_s or self.timeout_s)
        return [
            value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)
            for value in answer[EXPLANATION].reshape(len(facts))
        ]
