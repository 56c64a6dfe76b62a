"""Which Triton models are ready to serve, watched in the background.

Search builds every stage it is configured for, whether or not its model is there yet: a stage
whose model is not ready (still being trained, published or loaded) is skipped with a degradation
that says so, and comes on by itself once Triton reports the model ready, with no restart.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from atelier.serving.dependency import RemoteError
from atelier.serving.polling import Poller
from atelier.serving.triton_client import TritonClient

log = logging.getLogger(__name__)


class ModelReadiness(Poller):
    name = "model-readiness"

    def __init__(self, triton: TritonClient, models: Sequence[str], interval_s: float, timeout_s: float = 1.0) -> None:
        super().__init__(interval_s)
        self._triton = triton
        self._ready = dict.fromkeys(models, False)
        self._versions: dict[str, int | None] = dict.fromkeys(models)
        self._timeout_s = timeout_s

    def ready(self, model: str) -> bool:
        return self._ready.get(model, False)

    def version(self, model: str) -> int | None:
        """The newest version of `model` Triton had loaded at the last poll (None: unknown)."""
        return self._versions.get(model)

    async def poll(self) -> None:
        """Asks Triton about every watched model. A Triton that does not answer changes nothing: calls to
        it fail on their own, and its breaker deals with that."""
        for model in self._ready:
            try:
                ready = await self._triton.model_ready(model, self._timeout_s)
                versions = await self._triton.loaded_versions(model, self._timeout_s) if ready else []
            except (RemoteError, OSError, TimeoutError) as error:
                log.debug("model readiness unknown", extra={"model": model, "error": str(error)})
                continue
            if ready != self._ready[model]:
                log.info("model %s", "ready" if ready else "not ready", extra={"model": model})
            self._ready[model] = ready
            self._versions[model] = max(versions, default=None)
