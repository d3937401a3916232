"""The one typed configuration of Lethe: a YAML file plus LETHE_* environment overrides."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from limits import parse_many
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from unlearn_jobs.views import ALL_VIEWS, get_view

DEFAULT_MODEL = "smollm2-135m-instruct"
DEFAULT_CONFIG_PATH = Path(__file__).resolve().parent.parent / "deploy" / "local.yaml"


class ConfigError(ValueError):
    """A configuration value is missing or invalid; the message names the field and the source."""


class _Section(BaseModel):
    # Field defaults are written `default=...`: type checkers read pydantic fields through
    # dataclass_transform, which sees only the keyword, so `EngineConfig()` type-checks too.
    model_config = ConfigDict(extra="forbid", frozen=True)


class EngineConfig(_Section):
    """How each LLM replica builds its inference engine."""

    backend: str = Field(
        default="vllm",
        description="Engine registry name (`vllm`) or import path `package.module:Class` of an `Engine` "
        "subclass, built as `Class(config, replica=...)` in every LLM replica (tests/support/engines.py).",
    )
    model: str = Field(
        default=DEFAULT_MODEL,
        description="A prepared model name under `models_dir`, or a path to an HF safetensors folder.",
    )
    served_model_name: str | None = Field(
        default=None, description="Model id clients send and `/v1/models` lists; defaults to the folder name."
    )
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = Field(
        default="bfloat16", description="Weight and activation dtype (fp32 gives bit-stable greedy text on CPU)."
    )
    max_model_len: int = Field(default=2048, ge=64, le=131072, description="Context length (prompt + completion).")
    kv_cache_gb: float = Field(default=1.0, gt=0, le=512, description="KV cache size per replica in GiB (CPU backend).")
    enforce_eager: bool = Field(default=True, description="Skip graph capture (required on CPU, faster start).")
    seed: int = Field(default=0, description="Engine seed for sampling when a request gives none.")
    max_num_seqs: int = Field(default=32, ge=1, le=1024, description="Sequences scheduled together per replica.")
    default_max_tokens: int = Field(
        default=512, ge=1, description="Completion length when a request gives no max_tokens (capped by the context)."
    )
    cpu_threads: int = Field(default=1, ge=1, le=256, description="Threads each CPU engine may use.")


class ServerConfig(_Section):
    """The HTTP side and the Ray Serve deployment shape."""

    host: str = Field(default="127.0.0.1", description="Address the HTTP proxy binds.")
    port: int = Field(default=8000, ge=1, le=65535, description="HTTP port of the gateway.")
    ingress_replicas: int = Field(default=1, ge=1, le=64, description="Replicas of the FastAPI ingress deployment.")
    llm_replicas: int = Field(default=1, ge=1, le=64, description="Replicas of the LLM (vLLM) deployment.")
    llm_num_cpus: float = Field(default=1.0, ge=0, description="Ray CPUs reserved per LLM replica.")
    llm_num_gpus: float = Field(default=0.0, ge=0, description="Ray GPUs per LLM replica (0 on CPU nodes).")
    max_body_bytes: int = Field(
        default=1_048_576 * 2, ge=1024, description="Largest request body accepted; larger ones get 413."
    )
    max_chat_body_bytes: int = Field(
        default=1_048_576,
        ge=1024,
        description="Largest chat completion body; a larger one gets 413 from its Content-Length, before it is "
        "read or parsed. 4 bytes per character of guard.max_check_chars (UTF-8, JSON escapes): a bigger body "
        "could only be refused after it was parsed. Capped by max_body_bytes.",
    )
    request_timeout_s: float = Field(default=300.0, gt=0, description="Longest a chat request may run.")
    ready_timeout_s: float = Field(default=5.0, gt=0, description="How long /readyz waits for the engine to answer.")
    # --- access and limits (gateway.http.auth) ---
    chat_auth: Literal["none", "keys"] = Field(
        default="none",
        description="`keys`: the chat routes need an API key with the chat (or operator) role; `none`: open "
        "(the local quick start; any Authorization header is ignored there).",
    )
    rate_limit: str | None = Field(
        default="1200/minute",
        description="Requests each API key (and LETHE_ADMIN_TOKEN) may make, in `limits` notation "
        "(`20/second`, `1200/minute`, `10/second;1000/hour`); counted per ingress replica; unset: no limit.",
    )
    anonymous_rate_limit: str | None = Field(
        default=None, description="With chat_auth `none`: chat requests per client address (unset: no limit)."
    )
    max_streams_per_key: int = Field(
        default=32, ge=1, le=100_000, description="Chat requests one API key may have in flight per ingress replica."
    )
    anonymous_max_streams: int | None = Field(
        default=None, ge=1, description="With chat_auth `none`: chat requests in flight per client address."
    )
    key_cache_s: float = Field(
        default=5.0,
        ge=0,
        le=300,
        description="How long an ingress replica trusts a key lookup: a key revoked elsewhere stops working "
        "on every replica within this.",
    )
    max_ongoing_requests: int = Field(
        default=1000, ge=1, description="Requests one ingress replica handles at once (Serve `max_ongoing_requests`)."
    )
    max_queued_requests: int = Field(
        default=2000,
        ge=-1,
        description="Requests Serve's proxy queues for the ingress beyond that (-1: unbounded); over it, 503.",
    )
    llm_max_queued_requests: int = Field(
        default=512,
        ge=-1,
        description="Chat requests queued for a busy LLM replica per ingress (-1: unbounded); over it, 503.",
    )
    diagnostic_headers: bool = Field(
        default=False,
        description="Also send `x-lethe-replica` and `x-lethe-ingress` on chat responses (which LLM replica "
        "and ingress answered: topology, and `guard` on a refused prompt). Off: chat clients see only "
        "`x-lethe-model-version` and `x-lethe-index-version`.",
    )

    ray_address: str | None = Field(
        default=None, description="Existing Ray cluster to join (`auto`, `ray://…`); default starts a local one."
    )
    metrics_port: int = Field(
        default=8080,
        ge=1,
        le=65535,
        description="Port of Ray's metrics agent: the one Prometheus endpoint for every process of the node "
        "(set on the local Ray `lethe serve` starts; a joined cluster keeps its own).",
    )
    metrics_enabled: bool = Field(
        default=True, description="Record Lethe's metrics (`lethe_*`). Off exists to measure their cost (benchmarks)."
    )
    spans_nodes: bool | None = Field(
        default=None,
        description="Replicas may run on more than one node, so the ledger must be a database server "
        "(SQLite's lock needs one host). Default: true when joining a cluster (`ray_address` set).",
    )
    proxy_location: Literal["HeadOnly", "EveryNode"] = Field(
        default="EveryNode", description="Where Ray Serve runs its HTTP proxies: on every node, or on the head only."
    )
    llm_resources: dict[str, float] = Field(
        default_factory=dict,
        description="Custom Ray resources each LLM replica asks for (e.g. `{gpu_pool: 1}`): pins replicas "
        "to the nodes that offer them.",
    )
    ingress_resources: dict[str, float] = Field(
        default_factory=dict, description="Custom Ray resources each ingress (Gateway) replica asks for."
    )
    control_resources: dict[str, float] = Field(
        default_factory=dict,
        description="Custom Ray resources of the single forget authority, job manager and version "
        "controller (keep them on a node that stays, e.g. the head).",
    )

    @field_validator("rate_limit", "anonymous_rate_limit")
    @classmethod
    def _valid_rate(cls, value: str | None) -> str | None:
        if value is not None and value.strip():
            try:
                parse_many(value)
            except ValueError as exc:
                raise ValueError(f"not a rate limit like '1200/minute': {exc}") from None
            return value
        return None

    @field_validator("llm_resources", "ingress_resources", "control_resources", mode="before")
    @classmethod
    def _resources_from_json(cls, value: Any) -> Any:
        # From an environment variable the mapping arrives as JSON text.
        if isinstance(value, str):
            try:
                return json.loads(value) if value.strip() else {}
            except ValueError as exc:
                raise ValueError(f"not a JSON object of resource amounts: {exc}") from None
        return value

    @property
    def multi_node(self) -> bool:
        """Whether replicas can land on different hosts (explicit, or implied by joining a cluster)."""
        return self.ray_address is not None if self.spans_nodes is None else self.spans_nodes


class GuardConfig(_Section):
    """The inference-time guard and how forget-index versions reach every ingress replica."""

    enabled: bool = Field(
        default=True,
        description="Check chats against the forget index. Off exists only to measure the guard's cost "
        "(benchmarks): with it off, forgotten content is NOT enforced.",
    )
    prompt_mode: Literal["refuse", "strict"] = Field(
        default="refuse",
        description="A prompt asking for forgotten content: `refuse` (the guard answers; the generation "
        "started while the prompt was checked is cancelled, nothing of it is sent), or "
        "`strict`: answer, guarding the output with lower thresholds.",
    )
    ack_timeout_s: float = Field(
        default=10.0, gt=0, le=300, description="How long POST /v1/forget waits for a replica before evicting it."
    )
    poll_timeout_s: float = Field(default=5.0, gt=0, le=60, description="Long-poll period of each ingress replica.")
    check_budget_s: float = Field(
        default=5.0,
        gt=0,
        le=120,
        description="Most seconds one guard check (a prompt, or one step of a streamed answer) may take. Checks "
        "run off the event loop; one over the budget is refused (413 `prompt_too_large_to_check`, or a stream "
        "ended with `output_check_over_budget`), never served unchecked.",
    )
    max_check_chars: int = Field(
        default=256 * 1024,
        gt=0,
        le=16 * 1024 * 1024,
        description="Most prompt text (all messages, characters) the guard checks; a longer prompt is refused "
        "at once with 413 `prompt_too_large_to_check`, before any work.",
    )
    embed_threads: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Threads embedding one window per process (ONNX Runtime or torch). 1 leaves the other cores "
        "to the engine; 2 halves the wall time of a window on an idle core but spins it (docs/guard.md).",
    )


class UnlearnConfig(_Section):
    """Unlearning jobs: the Ray resources each job asks for (GPU workers on a cluster)."""

    num_cpus: float = Field(default=1.0, ge=0, description="Ray CPUs per job.")
    num_gpus: float = Field(default=0.0, ge=0, description="Ray GPUs per job (CUDA is used when present).")
    threads: int = Field(default=1, ge=1, le=256, description="Torch threads a CPU job may use.")


class SwapConfig(_Section):
    """Hot swaps of weight versions into the live LLM replicas (one replica at a time)."""

    auto_promote: bool = Field(
        default=True, description="Promote a version as soon as an unlearning job publishes it (its gates passed)."
    )
    drain_timeout_s: float = Field(
        default=120.0,
        gt=0,
        le=3600,
        description="How long a replica waits for its requests in flight to finish before a swap gives up.",
    )
    smoke_prompt: str = Field(
        default="What is the capital of France?",
        min_length=1,
        description="Fixed prompt each swapped replica must answer.",
    )
    smoke_max_tokens: int = Field(
        default=4,
        ge=1,
        le=512,
        description="Greedy tokens generated by the smoke test (the engine also checks that the weights it "
        "loaded are the bytes staged and hashed, so the answer only has to show that they generate).",
    )
    overlap: bool = Field(
        default=True,
        description="Stage every replica's new weights in memory while it still serves, and let a replica's "
        "smoke test overlap the next replica's drain and load when they share no core or GPU. False: one "
        "replica after another (a staged copy of the weights per replica is extra memory; for huge models).",
    )
    smoke_expect: str | None = Field(
        default=None, description="Regular expression the smoke answer must match (default: any non-empty text)."
    )

    @field_validator("smoke_expect")
    @classmethod
    def _valid_regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from None
        return value


class ProbesConfig(_Section):
    """Leakage probes: the raw weights asked the forget set's questions, bypassing the guard."""

    enabled: bool = Field(
        default=True,
        description="Run probes by themselves (after swaps, every interval_s); on-demand runs work either way.",
    )
    interval_s: float = Field(
        default=3600.0, ge=0, description="Seconds between periodic runs (0: only after swaps and on demand)."
    )
    after_swap: bool = Field(default=True, description="Probe the new version right after every successful swap.")
    retain_file: str | None = Field(
        default=None,
        description="Retain QA pairs (JSON/JSONL) to score; default: neutral questions against the "
        "base model's own answers, recorded the first time the base version is probed.",
    )
    max_tokens: int = Field(default=48, ge=1, le=1024, description="Greedy tokens per probe answer.")
    concurrency: int = Field(default=8, ge=1, le=256, description="Probe requests in flight at once.")
    views: list[str] = Field(
        default_factory=lambda: ["paraphrase_heldout", "fill_blank", "multiple_choice", "yes_no", "json"],
        description="Leakage views asked besides the plain questions (docs/unlearning.md): any of "
        "paraphrase_heldout, fill_blank, multiple_choice, yes_no, json, multilingual, indirect. The default "
        "adds 7 prompts per forget question; multilingual adds 3 more.",
    )

    @field_validator("views")
    @classmethod
    def _known_views(cls, value: list[str]) -> list[str]:
        # Views a probe can ask: those measurable from one greedy answer (not sampling or model copies).
        allowed = [v for v in ALL_VIEWS if get_view(v).generative]
        unknown = [v for v in value if v not in allowed]
        if unknown:
            raise ValueError(f"unknown or weights-only leakage view(s) {unknown}; probes can ask {allowed}")
        return list(dict.fromkeys(value))


class RetentionConfig(_Section):
    """When a forget request's content is crypto-shredded (its data key destroyed, see docs/data.md). The
    guard keeps enforcing it from keyed hashes and embeddings either way."""

    shred: Literal["unlearned", "retention", "never"] = Field(
        default="unlearned",
        description="`unlearned`: once its job published, the version serving descends from it and the "
        "latest leakage probe of that version found it clean; `retention`: `retention_days` after filing; "
        "`never`: only on `POST /v1/forget/{id}/shred`.",
    )
    retention_days: float = Field(default=30.0, gt=0, description="With shred=retention: days after filing.")
    drop_semantic: bool = Field(
        default=False,
        description="Also drop the request's sentence embeddings when shredding (they could be inverted into "
        "approximate text); its hashed literals and shingles keep enforcing it.",
    )
    check_interval_s: float = Field(default=60.0, gt=0, description="How often shredding is considered.")


class LogsConfig(_Section):
    """What `lethe serve` and its replicas log: one line per thing an operator acts on, never per
    internal call, never a prompt or an output (request logs carry the request id)."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Level of Lethe's own loggers and of Ray Serve's replica logs."
    )
    format: Literal["text", "json"] = Field(
        default="text", description="`json`: one JSON object per line (log collectors on a cluster)."
    )
    access_log: bool = Field(
        default=False,
        description="Ray Serve's per-call access log lines (every long-poll and ack between replicas "
        "too): off unless debugging request routing.",
    )


class LetheConfig(_Section):
    """Everything `lethe serve` needs, validated before anything starts."""

    home: Path = Field(default=Path("~/.lethe"), description="State directory (ledger, models, versions).")
    models_dir: Path | None = Field(default=None, description="Prepared base models; defaults to `<home>/models`.")
    admin_token: str | None = Field(
        default=None, description="Bearer token for operator routes; unset means operator routes answer 401."
    )
    db_url: str | None = Field(
        default=None, description="Ledger database (SQLAlchemy URL); default SQLite at `<home>/ledger.db`."
    )
    engine: EngineConfig = Field(default_factory=EngineConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)
    guard: GuardConfig = Field(default_factory=GuardConfig)
    unlearn: UnlearnConfig = Field(default_factory=UnlearnConfig)
    swap: SwapConfig = Field(default_factory=SwapConfig)
    probes: ProbesConfig = Field(default_factory=ProbesConfig)
    logs: LogsConfig = Field(default_factory=LogsConfig)
    retention: RetentionConfig = Field(default_factory=RetentionConfig)

    @field_validator("home", "models_dir", mode="after")
    @classmethod
    def _expand(cls, value: Path | None) -> Path | None:
        return None if value is None else Path(os.path.expandvars(str(value))).expanduser()

    @model_validator(mode="after")
    def _fill_models_dir(self) -> LetheConfig:
        if self.models_dir is None:
            object.__setattr__(self, "models_dir", self.home / "models")
        return self

    @property
    def ledger_url(self) -> str:
        return self.db_url or f"sqlite:///{self.home / 'ledger.db'}"

    @property
    def versions_dir(self) -> Path:
        """Published weight versions (`<home>/versions/<id>`, each with a manifest.json)."""
        return self.home / "versions"

    @property
    def models_root(self) -> Path:
        return self.models_dir or self.home / "models"

    @property
    def model_path(self) -> Path:
        """The folder the engine loads: a prepared model name resolves under `models_dir`."""
        candidate = Path(os.path.expanduser(self.engine.model))
        if candidate.is_absolute() or "/" in self.engine.model or candidate.exists():
            return candidate.resolve()
        return self.models_root / self.engine.model

    @property
    def served_model_name(self) -> str:
        return self.engine.served_model_name or self.model_path.name


# Environment overrides: variable -> dotted field path. Listed explicitly so the README table and
# the validation message can name them, and so a typo in a variable is not silently ignored.
ENV_OVERRIDES: dict[str, str] = {
    "LETHE_HOME": "home",
    "LETHE_MODELS_DIR": "models_dir",
    "LETHE_ADMIN_TOKEN": "admin_token",
    "LETHE_DB_URL": "db_url",
    "LETHE_PROMPT_MODE": "guard.prompt_mode",
    "LETHE_GUARD_ENABLED": "guard.enabled",
    "LETHE_JOB_NUM_CPUS": "unlearn.num_cpus",
    "LETHE_JOB_NUM_GPUS": "unlearn.num_gpus",
    "LETHE_ACK_TIMEOUT_S": "guard.ack_timeout_s",
    "LETHE_GUARD_CHECK_BUDGET_S": "guard.check_budget_s",
    "LETHE_GUARD_MAX_CHECK_CHARS": "guard.max_check_chars",
    "LETHE_MAX_CHAT_BODY_BYTES": "server.max_chat_body_bytes",
    "LETHE_MODEL": "engine.model",
    "LETHE_SERVED_MODEL_NAME": "engine.served_model_name",
    "LETHE_ENGINE": "engine.backend",
    "LETHE_DTYPE": "engine.dtype",
    "LETHE_MAX_MODEL_LEN": "engine.max_model_len",
    "LETHE_KV_CACHE_GB": "engine.kv_cache_gb",
    "LETHE_CPU_THREADS": "engine.cpu_threads",
    "LETHE_HOST": "server.host",
    "LETHE_PORT": "server.port",
    "LETHE_INGRESS_REPLICAS": "server.ingress_replicas",
    "LETHE_LLM_REPLICAS": "server.llm_replicas",
    "LETHE_LLM_NUM_CPUS": "server.llm_num_cpus",
    "LETHE_LLM_NUM_GPUS": "server.llm_num_gpus",
    "LETHE_MAX_BODY_BYTES": "server.max_body_bytes",
    "LETHE_REQUEST_TIMEOUT_S": "server.request_timeout_s",
    "LETHE_CHAT_AUTH": "server.chat_auth",
    "LETHE_RATE_LIMIT": "server.rate_limit",
    "LETHE_ANONYMOUS_RATE_LIMIT": "server.anonymous_rate_limit",
    "LETHE_MAX_STREAMS_PER_KEY": "server.max_streams_per_key",
    "LETHE_MAX_ONGOING_REQUESTS": "server.max_ongoing_requests",
    "LETHE_MAX_QUEUED_REQUESTS": "server.max_queued_requests",
    "LETHE_DIAGNOSTIC_HEADERS": "server.diagnostic_headers",
    "LETHE_RAY_ADDRESS": "server.ray_address",
    "LETHE_METRICS_PORT": "server.metrics_port",
    "LETHE_METRICS_ENABLED": "server.metrics_enabled",
    "LETHE_AUTO_PROMOTE": "swap.auto_promote",
    "LETHE_DRAIN_TIMEOUT_S": "swap.drain_timeout_s",
    "LETHE_SMOKE_PROMPT": "swap.smoke_prompt",
    "LETHE_PROBES_ENABLED": "probes.enabled",
    "LETHE_SHRED": "retention.shred",
    "LETHE_RETENTION_DAYS": "retention.retention_days",
    "LETHE_PROBE_INTERVAL_S": "probes.interval_s",
    "LETHE_PROBE_RETAIN_FILE": "probes.retain_file",
    "LETHE_SMOKE_EXPECT": "swap.smoke_expect",
    "LETHE_SPANS_NODES": "server.spans_nodes",
    "LETHE_PROXY_LOCATION": "server.proxy_location",
    "LETHE_LLM_RESOURCES": "server.llm_resources",
    "LETHE_INGRESS_RESOURCES": "server.ingress_resources",
    "LETHE_CONTROL_RESOURCES": "server.control_resources",
    "LETHE_LOG_LEVEL": "logs.level",
    "LETHE_LOG_FORMAT": "logs.format",
    "LETHE_ACCESS_LOG": "logs.access_log",
}

# Fields that never leave the process in an exported file: they come from Secrets (environment).
SECRET_FIELDS = ("admin_token", "db_url")


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = tree
    for key in parents:
        child = node.get(key)
        if not isinstance(child, dict):
            child = {}
            node[key] = child
        node = child
    node[leaf] = value


def _describe(error: ValidationError, sources: dict[str, str]) -> str:
    lines = []
    for item in error.errors():
        dotted = ".".join(str(p) for p in item["loc"])
        origin = sources.get(dotted, "config file")
        lines.append(f"  {dotted} ({origin}): {item['msg']} (got {item.get('input')!r})")
    return "invalid Lethe configuration:\n" + "\n".join(lines)


def check_shared_ledger(config: LetheConfig) -> None:
    """Refuse a SQLite ledger when replicas can run on several nodes: SQLite's locking (WAL) needs
    one host, and on a volume shared across nodes its locks can break and the ledger be corrupted."""
    if config.server.multi_node and config.ledger_url.startswith("sqlite"):
        raise ConfigError(
            "invalid Lethe configuration:\n  db_url (from $LETHE_DB_URL): replicas can span nodes "
            "(server.spans_nodes, or server.ray_address set) but the ledger is SQLite, which needs one host: "
            "set a PostgreSQL URL (postgresql://…), or server.spans_nodes: false for a one-node cluster"
        )


def load_config(path: str | Path | None = None, env: dict[str, str] | None = None) -> LetheConfig:
    """Read the YAML file (default `deploy/local.yaml`), apply LETHE_* overrides, validate.

    Raises ConfigError with one line per bad field, naming the variable or file it came from.
    """
    env = dict(os.environ if env is None else env)
    file_path = Path(path) if path is not None else Path(env.get("LETHE_CONFIG", DEFAULT_CONFIG_PATH))
    tree: dict[str, Any] = {}
    if path is not None or "LETHE_CONFIG" in env or file_path.exists():
        try:
            loaded = yaml.safe_load(file_path.read_text()) or {}
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {file_path}") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {file_path} is not valid YAML: {exc}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {file_path} must hold a mapping at the top level")
        tree = loaded
    return config_from_mapping(tree, env)


def config_from_mapping(tree: dict[str, Any], env: dict[str, str] | None = None) -> LetheConfig:
    """Validate a config mapping (a file's content, or the `lethe` argument of a Serve config) with
    the LETHE_* overrides of `env` on top (default: none)."""
    tree = json.loads(json.dumps(tree, default=str))  # a deep copy: overrides never touch the caller's
    env = {} if env is None else env
    sources: dict[str, str] = {}
    for variable, dotted in ENV_OVERRIDES.items():
        raw = env.get(variable)
        if raw is None or raw == "":
            continue
        _set_dotted(tree, dotted, raw)
        sources[dotted] = f"from ${variable}"
    try:
        return LetheConfig.model_validate(tree)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, sources)) from None
