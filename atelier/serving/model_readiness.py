"""Which Triton models are ready to serve, watched in the background.

Search builds every stage it is configured for, whether or not its model is there yet: a stage
whose model is not ready (still being trained, published or loaded) is skipped with a degradation
that says so, and comes on by itself once Triton reports the model ready, with no restart.

With each newly loaded version, its instance count is read from Triton's own model configuration
(the instance groups of triton_models/<model>/config.pbtxt): callers that can split their work
send one request per instance.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

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
        self._instances: dict[str, int] = {}
        self._timeout_s = timeout_s

    def ready(self, model: str) -> bool:
        return self._ready.get(model, False)

    def version(self, model: str) -> int | None:
        """The newest version of `model` Triton had loaded at the last poll (None: unknown)."""
        return self._versions.get(model)

    def instances(self, model: str) -> int:
        """Instances of `model` Triton runs, as its configuration of the version loaded says (1: unknown)."""
        return self._instances.get(model, 1)

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
            version = max(versions, default=None)
            if version is None:
                self._instances.pop(model, None)  # read again once loaded: a reload may change the count
            elif version != self._versions[model] or model not in self._instances:
                await self._read_instances(model)
            self._versions[model] = version

    async def _read_instances(self, model: str) -> None:
        try:
            config = await self._triton.model_config(model, self._timeout_s)
        except (RemoteError, OSError, TimeoutError) as error:
            log.debug("model configuration unknown", extra={"model": model, "error": str(error)})
            self._instances.pop(model, None)  # asked again at the next poll
            return
        self._instances[model] = instance_count(config)


def instance_count(config: dict[str, Any]) -> int:
    """Instances a Triton model configuration (as JSON) runs at once, at least 1."""
    return max(1, sum(int(group.get("count", 1)) for group in config.get("instance_group", [])))
