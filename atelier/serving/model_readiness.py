"""Which Triton models are ready to serve, watched in the background.

Search builds every stage it is configured for, whether or not its model is there yet: a stage
whose model is not ready (still being trained, published or loaded) is skipped with a degradation
that says so, and comes on by itself once Triton reports the model ready, with no restart.

With each newly loaded version, how Triton runs it is read from its own model configuration
(triton_models/<model>/config.pbtxt): how many instances, and the most rows a request may have.
A model counts as ready once that is known: callers that split their work send one request per
instance, none over the limit.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from atelier.serving.dependency import RemoteError
from atelier.serving.polling import Poller
from atelier.serving.triton_client import TritonClient

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Serving:
    """How Triton runs a model: `instances` side by side, requests of at most `max_rows` rows (0: any)."""

    instances: int = 1
    max_rows: int = 0

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Serving:
        """From a Triton model configuration as JSON."""
        instances = sum(int(group.get("count", 1)) for group in config.get("instance_group", []))
        return cls(max(1, instances), max(0, int(config.get("max_batch_size", 0))))


class ModelReadiness(Poller):
    name = "model-readiness"

    def __init__(self, triton: TritonClient, models: Sequence[str], interval_s: float, timeout_s: float = 1.0) -> None:
        super().__init__(interval_s)
        self._triton = triton
        self._ready = dict.fromkeys(models, False)
        self._versions: dict[str, int | None] = dict.fromkeys(models)
        self._serving: dict[str, Serving] = {}
        self._timeout_s = timeout_s

    def ready(self, model: str) -> bool:
        return self._ready.get(model, False)

    def version(self, model: str) -> int | None:
        """The newest version of `model` Triton had loaded at the last poll (None: unknown)."""
        return self._versions.get(model)

    def serving(self, model: str) -> Serving:
        """How Triton runs the version of `model` loaded (one instance, any rows: not known)."""
        return self._serving.get(model, Serving())

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
            version = max(versions, default=None)
            if version is None:
                self._serving.pop(model, None)  # read again once loaded: a reload may change it
            elif version != self._versions[model] or model not in self._serving:
                try:
                    self._serving[model] = Serving.from_config(await self._triton.model_config(model, self._timeout_s))
                except (RemoteError, OSError, TimeoutError) as error:
                    log.debug("model configuration unknown", extra={"model": model, "error": str(error)})
                    continue  # ready once it is known
            if ready != self._ready[model]:
                log.info("model %s", "ready" if ready else "not ready", extra={"model": model})
            self._ready[model] = ready
            self._versions[model] = version
