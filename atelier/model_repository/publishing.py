"""`atelier models publish`, `rollback` and `list` against the running Triton, with no restart.

A new version is written whole beside the serving one, then the model's version policy is
switched to it and the model reloaded through Triton's repository API (explicit model control).
Triton keeps the serving version answering while the new one loads and swaps them only once it
is ready; a reload that fails leaves the serving version as it was (Triton's model management
guarantees both), and then the policy is put back and the new folder removed.

An embedding model (text_embedding, CLIP) moves with its Milvus collection. Both versions are
served side by side while the new one re-embeds the catalogue into a collection of its own; the
alias search reads then names the new collection in one step; search, which embeds each query
with the version that built the collection it searches, follows within its refresh interval; only
after `switch_grace_s` is the old version unloaded. The previous collection stays, for a
rollback, until the next publish.
"""

from __future__ import annotations

import asyncio
import fcntl
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tritonclient.grpc as grpcclient
from pymilvus import MilvusClient
from tritonclient.utils import InferenceServerException

from atelier.model_repository.repository import (
    CONFIG,
    Family,
    ModelRepository,
    RefusedCheckpoint,
    check_checkpoint,
    checkpoint_files,
    family_of,
)
from atelier.serving import article_index
from atelier.serving.settings import Endpoints

LOCK = ".publish.lock"


class PublishError(RuntimeError):
    """A publish or rollback that did not happen; the serving versions are untouched."""


@dataclass(frozen=True)
class ModelRow:
    model: str
    versions: list[int]
    serving: int | None
    ready: str
    device: str
    source: str


@dataclass
class Publisher:
    repository: ModelRepository
    endpoints: Endpoints
    say: Callable[[str], None] = print
    load_timeout_s: float = 900.0
    # How long the version an index switch leaves behind stays loaded: longer than search takes to
    # notice the switch (SEARCH_INDEX_REFRESH_S).
    switch_grace_s: float = 6.0
    _milvus: MilvusClient | None = field(default=None, repr=False)

    @property
    def milvus(self) -> MilvusClient:
        if self._milvus is None:
            self._milvus = MilvusClient(uri=self.endpoints.milvus_uri)
        return self._milvus

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.repository.path.mkdir(parents=True, exist_ok=True)
        with (self.repository.path / LOCK).open("w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise PublishError("another publish or rollback is running on this repository") from None
            yield

    @contextmanager
    def _client(self) -> Iterator[grpcclient.InferenceServerClient]:
        address = self.endpoints.triton_address
        client = grpcclient.InferenceServerClient(address)
        try:
            try:
                client.is_server_live(client_timeout=5)
            except InferenceServerException as error:
                message = f"Triton at {address} does not answer ({error.message()}): is the stack up?"
                raise PublishError(message) from None
            yield client
        finally:
            client.close()

    # -- publish -----------------------------------------------------------------------------

    def publish(self, name: str, source: Path, settings: dict[str, Any] | None = None) -> int:
        """Publishes `source` as the next version of `name` (a model or a family) and serves it; the version."""
        family = family_of(name)
        source = source.expanduser().resolve()
        try:
            check_checkpoint(source, family)
        except RefusedCheckpoint as error:
            raise PublishError(f"refused: {error}; {self._still_serving(family)}") from None
        started = time.monotonic()
        with self._locked(), self._client() as client:
            serving = {model: self.repository.model(model).serving() for model in family.models}
            bound = self._bound(family)
            if bound is not None and all(serving.values()):
                version = self._publish_reindexed(client, family, source, settings, serving, bound)
            else:
                version = self._publish_alone(client, family, source, settings, serving)
        self.say(f"{family.name}: serving version {version} ({time.monotonic() - started:.1f}s)")
        return version

    def _bound(self, family: Family) -> article_index.IndexBinding | None:
        """What the family's alias names, when it fills a collection that exists."""
        return None if family.collection is None else article_index.binding(self.milvus, family.collection)

    def _publish_alone(
        self,
        client: grpcclient.InferenceServerClient,
        family: Family,
        source: Path,
        settings: dict[str, Any] | None,
        serving: dict[str, int | None],
    ) -> int:
        """A model no collection depends on (a reranker, or an embedding model before any catalogue load)."""
        version = max(self.repository.model(model).next_version() for model in family.models)
        self._write(family, version, source, settings)
        self._switch(client, family, {model: [version] for model in family.models}, serving, remove=version)
        self._served(family, version)
        if family.collection is not None:
            self.say(f"  nothing indexed with {family.name} yet: `atelier catalog load` fills {family.collection}")
        return version

    def _publish_reindexed(
        self,
        client: grpcclient.InferenceServerClient,
        family: Family,
        source: Path,
        settings: dict[str, Any] | None,
        serving: dict[str, int | None],
        bound: article_index.IndexBinding,
    ) -> int:
        assert family.collection is not None
        old = max(v for v in serving.values() if v is not None)
        folder = self.repository.model(family.models[0])
        version = folder.unfinished(checkpoint_files(source))
        if version is not None:
            self.say(f"{family.name}: resuming version {version}, published before but never switched to")
        else:
            version = max(self.repository.model(model).next_version() for model in family.models)
            self._write(family, version, source, settings)
        both = {model: sorted({serving[model] or old, version}) for model in family.models}
        self._switch(client, family, both, serving, remove=version)
        collection = article_index.versioned_collection(family.collection, version)
        self.say(f"  re-embedding the catalogue with version {version} into {collection}")
        try:
            result = asyncio.run(_reindex(family, version, self.endpoints))
        except Exception as error:
            self._back_to(client, family, serving)
            raise PublishError(
                f"re-index into {collection} failed ({type(error).__name__}: {error}); {self._still_serving(family)}; "
                f"publishing the same checkpoint again resumes it"
            ) from error
        self.say(f"  {collection}: {result.articles} articles ({result.embedded} embedded) in {result.seconds:.0f}s")
        article_index.point_alias(self.milvus, family.collection, collection)
        self._served(family, version)
        self.say(f"  {family.collection} now names {collection} (was {bound.collection})")
        time.sleep(self.switch_grace_s)
        self._switch(client, family, {model: [version] for model in family.models}, both, remove=None)
        self._drop_collections(family, keep={collection, bound.collection})
        return version

    def _write(self, family: Family, version: int, source: Path, settings: dict[str, Any] | None) -> None:
        started = time.monotonic()
        for model in family.models:
            self.repository.write_version(model, version, source, str(source), settings)
        self.say(f"{family.name}: version {version} written ({time.monotonic() - started:.1f}s); loading it")

    def _served(self, family: Family, version: int) -> None:
        for model in family.models:
            folder = self.repository.model(model)
            folder.write_history([*folder.history(), version])

    def _switch(
        self,
        client: grpcclient.InferenceServerClient,
        family: Family,
        target: Mapping[str, Sequence[int]],
        serving: Mapping[str, int | Sequence[int] | None],
        remove: int | None,
    ) -> None:
        """Serves `target`'s versions of each model of `family`, or puts every model back to `serving` (and
        removes version `remove`, when given) and raises PublishError."""
        switched: list[str] = []
        try:
            for model, versions in target.items():
                self.repository.write_config(model, versions)
                switched.append(model)
                loading = time.monotonic()
                client.load_model(model, client_timeout=self.load_timeout_s)
                for version in versions:
                    if not client.is_model_ready(model, str(version), client_timeout=10):
                        raise PublishError(f"{model} version {version} loaded but is not ready")
                shown = " and ".join(map(str, versions))
                self.say(f"  {model} version {shown} ready ({time.monotonic() - loading:.1f}s)")
        except (InferenceServerException, PublishError) as error:
            message = error.message() if isinstance(error, InferenceServerException) else str(error)
            message = message.strip().splitlines()[0] if message.strip() else type(error).__name__  # not the traceback
            for model in reversed(switched):
                self._restore(client, model, serving[model])
                if remove is not None:
                    self.repository.remove_version(model, remove)
            still = self._still_serving(family)
            raise PublishError(f"refused: Triton could not load it ({message}); {still}") from None

    def _back_to(
        self, client: grpcclient.InferenceServerClient, family: Family, serving: Mapping[str, int | None]
    ) -> None:
        for model in family.models:
            self._restore(client, model, serving[model])

    def _restore(
        self, client: grpcclient.InferenceServerClient, model: str, versions: int | Sequence[int] | None
    ) -> None:
        if versions is None:
            (self.repository.model(model).path / CONFIG).unlink(missing_ok=True)
            try:
                client.unload_model(model, client_timeout=60)
            except InferenceServerException:
                pass
            return
        self.repository.write_config(model, [versions] if isinstance(versions, int) else versions)
        # Triton kept the serving version through the failed reload; this puts the policy back in step.
        client.load_model(model, client_timeout=self.load_timeout_s)

    def _drop_collections(self, family: Family, keep: set[str]) -> None:
        """Collections of the family's older versions: only the serving one and the one before it stay."""
        assert family.collection is not None
        prefix = f"{family.collection}_v"
        for name in self.milvus.list_collections():
            if name.startswith(prefix) and name[len(prefix) :].isdigit() and name not in keep:
                self.milvus.drop_collection(name)
                self.say(f"  dropped {name} (only the previous collection is kept, for a rollback)")

    def _still_serving(self, family: Family) -> str:
        versions = {model: self.repository.model(model).serving() for model in family.models}
        shown = ", ".join(f"{model} version {v}" if v else f"{model} nothing" for model, v in versions.items())
        return f"still serving {shown}"

    # -- rollback ----------------------------------------------------------------------------

    def rollback(self, name: str) -> int:
        """Serves the version each model of `name` served before its current one again; that version."""
        family = family_of(name)
        started = time.monotonic()
        with self._locked(), self._client() as client:
            histories: dict[str, list[int]] = {}
            for model in family.models:
                folder = self.repository.model(model)
                present = set(folder.versions())
                histories[model] = [v for v in folder.history() if v in present]
                if len(histories[model]) < 2:
                    raise PublishError(f"{model} has no earlier version to roll back to (served: {histories[model]})")
            serving = {model: history[-1] for model, history in histories.items()}
            target = {model: history[-2] for model, history in histories.items()}
            previous = max(target.values())
            bound = self._bound(family)
            if bound is None:
                self._switch(client, family, {m: [v] for m, v in target.items()}, serving, remove=None)
                for model, history in histories.items():
                    self.repository.model(model).write_history(history[:-1])
            else:
                assert family.collection is not None
                collection = article_index.versioned_collection(family.collection, previous)
                if not self.milvus.has_collection(collection):
                    raise PublishError(
                        f"refused: {collection}, built by version {previous}, is gone (a collection is kept only "
                        f"until the next publish); {self._still_serving(family)}"
                    )
                both = {model: sorted({serving[model], target[model]}) for model in family.models}
                self._switch(client, family, both, serving, remove=None)
                article_index.point_alias(self.milvus, family.collection, collection)
                self.say(f"  {family.collection} now names {collection} (was {bound.collection})")
                for model, history in histories.items():
                    self.repository.model(model).write_history(history[:-1])
                time.sleep(self.switch_grace_s)
                self._switch(client, family, {m: [v] for m, v in target.items()}, both, remove=None)
        self.say(f"{family.name}: serving version {previous} again ({time.monotonic() - started:.1f}s)")
        return previous

    # -- list ---------------------------------------------------------------------------------

    def rows(self) -> list[ModelRow]:
        client = grpcclient.InferenceServerClient(self.endpoints.triton_address)
        try:
            return [self._row(client, model) for model in self.repository.model_names()]
        finally:
            client.close()

    def _row(self, client: grpcclient.InferenceServerClient, model: str) -> ModelRow:
        folder = self.repository.model(model)
        serving = folder.serving()
        ready, device, source = "-", "-", "-"
        if serving is not None:
            record = folder.record(serving)
            source = str(record.get("source", "-"))
            try:
                ready = "ready" if client.is_model_ready(model, str(serving), client_timeout=3) else "not ready"
                config = client.get_model_config(model, as_json=True, client_timeout=3)["config"]
                device = ",".join(
                    sorted({g.get("kind", "KIND_CPU").removeprefix("KIND_").lower() for g in config["instance_group"]})
                )
            except InferenceServerException as error:
                ready = f"not loaded ({error.message()[:60]})"
        return ModelRow(model, folder.versions(), serving, ready, device, source)


async def _reindex(family: Family, version: int, endpoints: Endpoints) -> Any:
    from atelier.model_repository.reindex import reindex  # the catalogue's imports, only when re-indexing

    return await reindex(family, version, endpoints)
