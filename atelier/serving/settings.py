"""Settings: pydantic-settings models read from environment variables, validated at start-up.

Each process reads one model (services/*/config.py, the launcher's, each Triton model's); the
models here are the parts they share. A field's variable is its model's prefix and its name in
capitals (search's `RerankSettings.budget_s`, prefix SEARCH_RERANK_, is SEARCH_RERANK_BUDGET_S);
durations are seconds (`_S`). A blank variable counts as unset. A bad value fails start-up with a
SettingsError that names the variable and says why. `atelier config` prints the effective settings and
docs/configuration.md lists them all (both come from these models).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal
from urllib.parse import quote, urlsplit

from pydantic import Field, PositiveFloat, PositiveInt, SecretStr, ValidationError, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

if TYPE_CHECKING:
    from typing import Self  # Python 3.11: the Triton image's Python (3.10) imports this module too

ROOT = Path(__file__).resolve().parents[2]

# The local stack's Redis password, in its state folder (`atelier up` writes a new one when there is none).
REDIS_PASSWORD_FILE = "redis-password"  # noqa: S105 (a file name)

# The environment being read: os.environ, or the mapping given to `from_env` (tests, tools).
_ENVIRONMENT: ContextVar[Mapping[str, str] | None] = ContextVar("settings_environment", default=None)


class SettingsError(ValueError):
    """A setting has a bad value; the message names its variable."""


class _Environment(PydanticBaseSettingsSource):
    """Each field's variable (prefix + NAME) from the environment being read; blank means unset."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        name = variable_name(self.settings_cls, field_name)
        return _environment().get(name), name, False

    def __call__(self) -> dict[str, Any]:
        return given_values(self, skip=lambda field_name, field: _nested_settings(field) is not None)


def given_values(
    source: PydanticBaseSettingsSource, skip: Callable[[str, FieldInfo], bool] = lambda name, field: False
) -> dict[str, Any]:
    """The fields `source` has a value for: stripped, blank ones left out, but for the model's `verbatim`
    fields (taken as they are, set even when empty)."""
    values: dict[str, Any] = {}
    verbatim = getattr(source.settings_cls, "verbatim", ())
    for field_name, field in source.settings_cls.model_fields.items():
        if skip(field_name, field):
            continue  # a nested model is built by its default factory, from the same environment
        raw, _, _ = source.get_field_value(field, field_name)
        if raw is not None and field_name in verbatim:
            values[field_name] = raw
        elif raw is not None and raw.strip():
            values[field_name] = raw.strip()
    return values


def _environment() -> Mapping[str, str]:
    environment = _ENVIRONMENT.get()
    return os.environ if environment is None else environment


def _nested_settings(field: FieldInfo) -> type[Settings] | None:
    annotation = field.annotation
    return annotation if isinstance(annotation, type) and issubclass(annotation, Settings) else None


def variable_name(settings_cls: type[BaseSettings], field_name: str) -> str:
    return f"{settings_cls.model_config.get('env_prefix', '')}{field_name.upper()}"


@dataclass(frozen=True)
class Variable:
    """One environment variable of a settings model, for `atelier config` and the docs."""

    name: str
    default: str
    description: str
    value: str | None = None  # effective value, when read from a loaded model


class Settings(BaseSettings):
    """Base of every settings model: environment only, frozen, field docstrings as descriptions."""

    model_config = SettingsConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)
    # Prefixes this model owns whole: a variable under one that no field reads fails start-up
    # (a typo, or a name from before a rename, would otherwise be silently ignored).
    owned_prefixes: ClassVar[tuple[str, ...]] = ()
    # Fields whose variable is taken as it is, spaces kept and set even when empty (a text prefix).
    verbatim: ClassVar[frozenset[str]] = frozenset()
    # Sources below the environment (the Triton models' config.pbtxt parameters), in order.
    lower_sources: ClassVar[tuple[type[PydanticBaseSettingsSource], ...]] = ()

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as error:
            raise SettingsError(type(self).describe(error)) from None

    @classmethod
    def describe(cls, error: ValidationError) -> str:
        """The SettingsError message of a failed validation, naming each bad variable."""
        return _describe(cls, error)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, _Environment(settings_cls), *(source(settings_cls) for source in cls.lower_sources))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Self:
        """The settings from `env` (default: os.environ); SettingsError names a bad or unknown variable."""
        token = _ENVIRONMENT.set(env)
        try:
            cls._check_unknown(_environment())
            return cls()
        finally:
            _ENVIRONMENT.reset(token)

    @classmethod
    def _check_unknown(cls, environment: Mapping[str, str]) -> None:
        prefixes = tuple(prefix for model in cls._models() for prefix in model.owned_prefixes)
        if not prefixes:
            return
        known = {variable.name for variable in cls.variables()}
        unknown = sorted(name for name in environment if name.startswith(prefixes) and name not in known)
        if unknown:
            raise SettingsError(
                f"unknown setting{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} "
                f"(`atelier config` lists every setting; docs/configuration.md says what each means)"
            )

    @classmethod
    def _models(cls) -> Iterator[type[Settings]]:
        yield cls
        for field in cls.model_fields.values():
            if (nested := _nested_settings(field)) is not None:
                yield from nested._models()

    @classmethod
    def variables(cls) -> list[Variable]:
        """Every variable this model reads, nested models included, in declaration order."""
        found: list[Variable] = []
        for field_name, field in cls.model_fields.items():
            if (nested := _nested_settings(field)) is not None:
                found += nested.variables()
                continue
            default = "" if field.default is None else _shown(field.get_default(call_default_factory=True))
            found.append(Variable(variable_name(cls, field_name), default, " ".join((field.description or "").split())))
        return found

    def effective(self) -> list[Variable]:
        """`variables()` with the values this instance holds."""
        declared = {variable.name: variable for variable in type(self).variables()}
        values: list[Variable] = []
        for field_name, field in type(self).model_fields.items():
            value = getattr(self, field_name)
            if _nested_settings(field) is not None:
                values += value.effective()
                continue
            variable = declared[variable_name(type(self), field_name)]
            values.append(Variable(variable.name, variable.default, variable.description, _shown(value)))
        return values

    def chosen(self, field_name: str) -> Any:
        """The field's value when its variable was set, else None (the caller decides the default)."""
        return getattr(self, field_name) if field_name in self.model_fields_set else None


def _shown(value: object) -> str:
    """A value as the docs and `atelier config` show it; a path in this checkout relative to it (`.atelier`)."""
    if isinstance(value, Path) and value.is_relative_to(ROOT):
        return str(value.relative_to(ROOT))
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, tuple | list):
        return ",".join(_shown(item) for item in value)
    return "" if value is None else str(value)


def _describe(settings_cls: type[Settings], error: ValidationError) -> str:
    problems = []
    for problem in error.errors():
        location = problem["loc"]
        field = str(location[0]) if location else ""
        where = f"{variable_name(settings_cls, field)} ({field})" if field else settings_cls.__name__
        given = problem.get("input")
        shown = f" (got {given!r})" if isinstance(given, str | int | float) and location else ""
        problems.append(f"{where}: {problem['msg']}{shown}")
    return "; ".join(problems)


class Endpoints(Settings):
    """Where every component of the stack listens and how peers reach it.

    Locally everything is on one loopback host; in containers servers bind ATELIER_BIND_HOST
    (0.0.0.0) and reach each peer by its own host name.
    """

    model_config = SettingsConfigDict(env_prefix="ATELIER_")

    host: str = "127.0.0.1"
    """Host every component listens on and is reached at, unless a more specific setting says otherwise."""
    port_offset: int = 0
    """Added to every default port (the test stack runs beside a developer's stack with 1000)."""
    bind_host: str = ""
    """Address servers bind (containers: 0.0.0.0); empty: ATELIER_HOST."""
    search_host: str = ""
    """Host of the search service as its peers reach it; empty: ATELIER_HOST."""
    ranker_host: str = ""
    """Host of the ranker service; empty: ATELIER_HOST."""
    features_host: str = ""
    """Host of the features service; empty: ATELIER_HOST."""
    redis_host: str = ""
    """Host of Redis (Valkey); empty: ATELIER_HOST."""
    broker_host: str = ""
    """Host of the Kafka-protocol broker; empty: ATELIER_HOST."""
    milvus_host: str = ""
    """Host of Milvus; empty: ATELIER_HOST."""
    triton_host: str = ""
    """Host of Triton; empty: ATELIER_HOST."""
    edge_auth_host: str = ""
    """Host of the edge's authorization service (beside Envoy: a sidecar in k8s); empty: ATELIER_HOST."""
    ranker_target: str = ""
    """The gRPC target search reaches the ranker by, when not its host and port: a list of replicas
    ("ipv4:127.0.0.1:50052,127.0.0.1:50062", which `atelier up` sets for ATELIER_RANKER_REPLICAS)."""
    features_target: str = ""
    """The gRPC target search reaches the features service by, when not its host and port (as ATELIER_RANKER_TARGET)."""
    envoy_port: int = 8080
    """Envoy's REST and gRPC listener."""
    envoy_admin_port: int = 9901
    """Envoy's admin interface, on 127.0.0.1 only (its /ready and /stats/prometheus are on ATELIER_ENVOY_STATS_PORT)."""
    envoy_stats_port: int = 9902
    """Envoy's listener for probes and Prometheus: the admin interface's /ready and /stats/prometheus, nothing else."""
    edge_auth_port: int = 9191
    """The edge's authorization service (API keys, rate limits), which Envoy asks about each request."""
    edge_auth_metrics_port: int = 9467
    """The edge authorization service's Prometheus metrics (requests and denials per key name)."""
    search_port: int = 50051
    """The search service's gRPC port."""
    ranker_port: int = 50052
    """The ranker service's gRPC port."""
    features_port: int = 50053
    """The features service's gRPC port."""
    search_metrics_port: int = 9464
    """The search service's Prometheus metrics."""
    ranker_metrics_port: int = 9465
    """The ranker service's Prometheus metrics."""
    features_metrics_port: int = 9466
    """The features service's Prometheus metrics."""
    stream_web_port: int = 6066
    """The primary stream worker's web server (Faust)."""
    stream_retry_web_port: int = 6067
    """The retry stream worker's web server (Faust)."""
    redis_port: int = 6379
    """Redis (Valkey); with ATELIER_REDIS_CLUSTER, one of the cluster's nodes (the client finds the others)."""
    redis_cluster: bool = False
    """Redis is a cluster (Redis Cluster / Valkey cluster mode): every client uses redis-py's cluster client.
    Default: on when ATELIER_REDIS_CLUSTER_PRIMARIES is above 0 (the local stack's cluster)."""
    broker_port: int = 9092
    """The Kafka-protocol broker."""
    milvus_port: int = 19530
    """Milvus' gRPC port (its other ports follow it)."""
    triton_grpc_port: int = 8001
    """Triton's gRPC port."""
    triton_http_port: int = 8000
    """Triton's HTTP port."""
    triton_metrics_port: int = 8002
    """Triton's Prometheus metrics."""
    prometheus_port: int = 9090
    """The local stack's Prometheus (`atelier up`; ATELIER_PROMETHEUS_ENABLED=0: none), scraping every component."""
    redis_exporter_port: int = 9121
    """The local stack's Redis exporter (prometheus-redis-exporter), which Prometheus scrapes for Redis' metrics."""
    trace_receiver_port: int = 4317
    """The local stack's OTLP/gRPC span receiver (`atelier up`; `atelier traces` reads what it keeps)."""
    redis_password: SecretStr | None = None
    """Redis' password (AUTH); default: the content of ATELIER_REDIS_PASSWORD_FILE."""
    redis_password_file: Path | None = None
    """A file holding Redis' password (a mounted secret); default: the local stack's, redis-password in the
    state folder, which `atelier up` writes (none there: no password)."""

    @model_validator(mode="before")
    @classmethod
    def _shift_default_ports(cls, values: dict[str, Any]) -> dict[str, Any]:
        """Every port not set explicitly is its default plus ATELIER_PORT_OFFSET."""
        try:
            offset = int(values.get("port_offset", 0))
        except ValueError:
            return values  # the field's own validation names the variable
        for name, field in cls.model_fields.items():
            if name.endswith("_port") and name not in values:
                values[name] = field.default + offset
        return values

    @model_validator(mode="before")
    @classmethod
    def _local_cluster(cls, values: dict[str, Any]) -> dict[str, Any]:
        """The local stack's cluster (ATELIER_REDIS_CLUSTER_PRIMARIES, atelier.stack.settings) is a cluster to
        every client in its environment: its services, and the CLI and tests in the shell that started it."""
        primaries = _environment().get("ATELIER_REDIS_CLUSTER_PRIMARIES", "").strip()
        if "redis_cluster" not in values and primaries.isdigit() and int(primaries) > 0:
            values["redis_cluster"] = True
        return values

    def address(self, port: int) -> str:
        """host:port on the local stack's host (the launcher, local tools and tests)."""
        return f"{self.host}:{port}"

    def _on(self, host: str, port: int) -> str:
        return f"{host or self.host}:{port}"

    @property
    def search_address(self) -> str:
        return self._on(self.search_host, self.search_port)

    @property
    def ranker_address(self) -> str:
        """The ranker's gRPC target (every replica, round robin: atelier.serving.channels)."""
        return self.ranker_target or self._on(self.ranker_host, self.ranker_port)

    @property
    def features_address(self) -> str:
        """The features service's gRPC target (every replica, round robin)."""
        return self.features_target or self._on(self.features_host, self.features_port)

    @property
    def edge_auth_address(self) -> str:
        return self._on(self.edge_auth_host, self.edge_auth_port)

    @property
    def triton_address(self) -> str:
        return self._on(self.triton_host, self.triton_grpc_port)

    @property
    def milvus_uri(self) -> str:
        return f"http://{self._on(self.milvus_host, self.milvus_port)}"

    def redis_auth(self) -> str | None:
        """Redis' password: ATELIER_REDIS_PASSWORD, else the password file's content (read at each call, so the
        local stack's, written by `atelier up`, is found by settings loaded before it); None without either."""
        if self.redis_password is not None:
            return self.redis_password.get_secret_value()
        path = (self.redis_password_file or state_dir() / REDIS_PASSWORD_FILE).expanduser()
        if self.redis_password_file is None and not path.is_file():
            return None
        try:
            return path.read_text().strip() or None
        except OSError as error:
            raise SettingsError(f"ATELIER_REDIS_PASSWORD_FILE: cannot read {path}: {error.strerror}") from None

    @property
    def redis_url(self) -> str:
        """Redis' URL, with its password when there is one: never log it."""
        password = self.redis_auth()
        auth = f":{quote(password, safe='')}@" if password else ""
        return f"redis://{auth}{self._on(self.redis_host, self.redis_port)}/0"

    @property
    def broker_bootstrap(self) -> str:
        return self._on(self.broker_host, self.broker_port)

    @property
    def edge_url(self) -> str:
        """Envoy's REST address, as a local client reaches it."""
        return f"http://{self.address(self.envoy_port)}"

    @property
    def envoy_admin_url(self) -> str:
        """Envoy's admin interface, which listens on 127.0.0.1 only (local tools on its host)."""
        return f"http://127.0.0.1:{self.envoy_admin_port}"

    @property
    def edge_grpc_address(self) -> str:
        """Envoy's address for gRPC clients (the same listener as REST)."""
        return self.address(self.envoy_port)

    @property
    def listen_host(self) -> str:
        return self.bind_host or self.host


class Tracing(Settings):
    """OpenTelemetry's own variable for the span exporter (its other OTEL_* variables apply as usual)."""

    model_config = SettingsConfigDict(env_prefix="OTEL_")

    traces_exporter: Literal["none", "console", "otlp"] = "none"
    """Span exporter: none, console or otlp (to OTEL_EXPORTER_OTLP_ENDPOINT). `atelier up` sets otlp,
    to its own receiver (ATELIER_TRACE_RECEIVER_PORT), unless set."""
    exporter_otlp_endpoint: str = "http://localhost:4317"
    """The OTLP/gRPC receiver (a collector, Jaeger) the services, stream workers and Envoy send spans to."""

    @property
    def otlp_host_port(self) -> tuple[str, int]:
        """The receiver's host and port (Envoy's collector cluster)."""
        address = urlsplit(
            self.exporter_otlp_endpoint if "//" in self.exporter_otlp_endpoint else f"//{self.exporter_otlp_endpoint}"
        )
        return address.hostname or "localhost", address.port or 4317


class ServerSettings(Settings):
    """Settings every gRPC service shares (see atelier.serving.grpc_server)."""

    model_config = SettingsConfigDict(env_prefix="ATELIER_")

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    """Log level of the services' JSON logs."""
    shutdown_grace_s: float = Field(10.0, ge=0)
    """Seconds in-flight calls get to finish after SIGTERM."""
    max_in_flight: PositiveInt = 64
    """Calls a service works on at once; more are refused with RESOURCE_EXHAUSTED (HTTP 429)."""
    max_connection_age_s: PositiveFloat = 30.0
    """A client connection is closed gracefully after this long (calls in flight finish), so that clients
    look their peers' addresses up again and spread over replicas added since (atelier.serving.channels)."""
    tracing: Tracing = Field(default_factory=Tracing)

    @model_validator(mode="before")
    @classmethod
    def _upper_case_level(cls, values: dict[str, Any]) -> dict[str, Any]:
        if isinstance(values.get("log_level"), str):
            values["log_level"] = values["log_level"].upper()
        return values

    @property
    def traces_exporter(self) -> str:
        return self.tracing.traces_exporter


class Vision(Settings):
    """VISION_ENABLED, the behaviour spec's switch of image and hybrid search (read by search, the catalogue load)."""

    model_config = SettingsConfigDict(env_prefix="VISION_")

    enabled: bool = False
    """Image and hybrid search (CLIP). `atelier up` sets it for search: on when Triton serves the CLIP
    towers, unless set to 0."""


class ExplanationSettings(Settings, env_prefix="SEARCH_EXPLAIN_"):
    """Explanations of the top results a request asks for (explain_top); read by search, and by the launcher and
    the Triton image's start script (the explainer is loaded in llm mode only)."""

    mode: Literal["template", "llm"] = "template"
    """template: sentences built from each result's signals; llm: a sentence generated by Triton's explainer
    (launched only in this mode), checked against the article, the template's when it fails the check, runs
    past its budget or the model is not ready (each said in the answer's degradations)."""
    budget_s: PositiveFloat = 3.0
    """Deadline of a generation (llm): the results of one answer in one call. Sized on 2 CPU cores, SmolLM2-135M
    at one thread: one sentence ~1.4 s alone, ~2.5 s beside two busy search clients (docs/performance.md)."""
    max_generated: PositiveInt = 1
    """Most results of an answer explained by generated sentences (llm), from the top; the others by the
    template's. 1, as the original system: three sentences take ~1.8 s alone on 2 CPU cores, past 3 s under load."""
    max_in_flight: PositiveInt = 1
    """Generations running at once (llm); a request that finds them all taken gets the template's sentences at
    once, so searches that ask for no explanation keep their latency."""


class CollectionLayout(Settings):
    """How a new Milvus collection is laid out (read when the catalogue load or a model publish creates
    one; an existing collection keeps its own)."""

    model_config = SettingsConfigDict(env_prefix="ATELIER_MILVUS_")

    shards: PositiveInt | None = None
    """Shards of a new collection (its insert streams, each written by one data node); unset: Milvus'
    default (1). The k8s milvus-cluster overlay sets it to its data nodes."""
    replicas: PositiveInt = 1
    """In-memory replicas a new collection is loaded with, each on its own query nodes (no more than
    the query nodes). Above 1 only with Milvus in cluster mode (the k8s milvus-cluster overlay)."""


class ServiceSettings(Settings):
    """Base of a gRPC service's settings: where everything listens, its server's settings, and its
    own prefix (`env_prefix`), which it owns whole."""

    endpoints: Endpoints = Field(default_factory=Endpoints)
    server: ServerSettings = Field(default_factory=ServerSettings)

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        prefix = cls.model_config.get("env_prefix", "")
        cls.owned_prefixes = (prefix,) if prefix else ()


class StatePaths(Settings):
    """Where the local stack keeps its logs, pid files and data."""

    model_config = SettingsConfigDict(env_prefix="ATELIER_")

    state_dir: Path = ROOT / ".atelier"
    """The local stack's state folder (logs, data of the servers, supervisord's files)."""

    @property
    def state(self) -> Path:
        return self.state_dir.expanduser().resolve()


def state_dir(env: Mapping[str, str] | None = None) -> Path:
    """The folder holding the local stack's logs, pid files and data."""
    return StatePaths.from_env(env).state
