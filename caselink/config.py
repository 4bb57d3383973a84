"""Configuration: one typed settings object, built by :func:`load_settings` and passed explicitly.

Sources, later ones winning: built-in defaults, a TOML file (``caselink.toml`` in the working
directory or ``--config``/``CASELINK_CONFIG``), then ``CASELINK_*`` environment variables for the
few settings operators usually set per deployment. Nothing is read at import time.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from caselink.errors import ConfigError


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TextConfig(_Section):
    """Normalisation and tokenisation."""

    opencc: str = Field("t2s", description="OpenCC conversion applied before matching ('' disables).")
    cjk_bigrams: bool = Field(True, description="Add overlapping CJK character bigrams to jieba words.")
    dotted_numbers: bool = Field(True, description="Keep a dotted number (version 3.4.0, address, 50.5) as one "
                                 "token besides its parts.")
    cjk_unigrams: bool = Field(False, description="Add single CJK characters (stop characters excluded) as well: "
                               "helps short Chinese questions, tips mixed Chinese-English text towards the Chinese.")
    word_bigrams: bool = Field(False, description="Add adjacent English word pairs as phrase tokens.")
    jieba_hmm: bool = Field(True, description="Let jieba's HMM guess words missing from its dictionary (slower).")
    user_dict: Path | None = Field(None, description="Extra jieba dictionary file (one term per line).")


class EncoderConfig(_Section):
    """Which sentence encoder embeds records and queries."""

    model: str = Field(
        "auto",
        description="'auto' (use-m3, or use-m3+minilm for a corpus written in English; chosen when an index is "
        "built from scratch), 'use-m3' (bundled multilingual USE), 'minilm' (bundled all-MiniLM-L6-v2, English), "
        "a sentence-transformers model name / local directory, optionally prefixed 'st:', or several joined by '+' "
        "for an equal-weight ensemble.",
    )
    threads: int = Field(0, ge=0, description="BLAS/torch threads; 0 = the cores this process may use.")
    batch_size: int = Field(64, ge=1, le=4096)
    chunk_chars: int = Field(
        400, ge=50, description="Texts longer than this are split at sentence ends and their chunk vectors pooled."
    )
    lead_weight: float = Field(
        0.5, ge=0, le=1, description="Share of a long text's vector given to its lead chunk (title and opening).")


class BM25Config(_Section):
    k1: float = Field(1.2, gt=0)
    b: float = Field(0.75, ge=0, le=1)
    delta: float = Field(
        0.5, ge=0, le=5, description="BM25L's shift of the length-normalised term frequency, so long SOP sections "
        "and reports are not over-penalised (0 = classic BM25).")
    title_weight: int = Field(2, ge=1, le=10, description="Title tokens count this many times.")
    code_weight: int = Field(2, ge=1, le=10, description="Error codes and part numbers count this many times.")


class VectorConfig(_Section):
    exact_below: int = Field(50_000, ge=0, description="Use exact inner-product search below this many records.")
    ivf_nlist: int = Field(0, ge=0, description="IVF lists for the approximate index; 0 = 4*sqrt(N).")
    nprobe: int = Field(64, ge=1, description="IVF lists probed per query (64 kept recall@10 >= 0.95 in bench/ann_recall.md).")
    quantizer: Literal["flat", "sq8", "pq"] = Field("flat", description="Vector storage in the approximate index.")
    center: bool = Field(True, description="Subtract each record kind's mean vector, fitted at a full build, so "
                         "unrelated records score near 0 whatever the model (indexing/centering.py).")
    center_min_records: int = Field(100, ge=2, description="Fit a mean only on at least this many records, per kind "
                                    "(fewer: no centring until a rebuild finds enough).")


class RankConfig(_Section):
    mode: Literal["hybrid", "dense", "keyword"] = "hybrid"
    fusion: Literal["adaptive", "convex", "rrf"] = Field(
        "adaptive", description="How dense and keyword rankings are combined (see recommender/fusion.py).")
    dense_weight: float = Field(0.5, ge=0, le=1)
    keyword_weight: float = Field(0.5, ge=0, le=1)
    rrf_k: int = Field(60, ge=1)
    candidates: int = Field(100, ge=10, le=5000, description="Candidates taken from each side before fusion.")
    related_max_terms: int = Field(
        64, ge=0, description="Keyword side of 'related to a record': only the record's this many most distinctive "
        "terms (qtf x idf); 0 = all.")
    code_rule_max_share: float = Field(
        0.01, ge=0, le=1, description="Related to a record: the exact-code rule (records sharing the record's codes "
        "first) counts only codes held by at most this share of the records (and never fewer than 20 records): a "
        "code most of a product line carries names the line, not the problem. 0 = every code, as typed searches.")
    dense_floor: float = Field(
        0.25, ge=-1, le=1, description="Below this best cosine the dense side is not trusted; keyword answers."
    )
    max_k: int = Field(100, ge=1, le=1000)
    learned: Literal["auto", "off"] = Field(
        "auto", description="auto: rerank hybrid results with the model `caselink train` saved next to the index, "
        "when there is one whose held-out gain was credible (at least 50 validation queries, 95% interval of "
        "the MRR@10 gain above 0); off: today's hybrid ranking exactly. mode='learned' asks "
        "for the model explicitly.")
    learned_depth: int = Field(
        50, ge=0, le=10000, description="The learned ranker reorders this many of the fused list's first "
        "candidates (at least k); the rest follow in fused order. 0 = the whole list (~200). `caselink train` "
        "gathers the same depth, so a model is trained at the depth it serves: retrain after changing it. "
        "50 ranked as well as the whole list on the sets measured and costs a quarter of the features "
        "(bench/learned_cost.md).")
    feedback: bool = Field(
        True, description="Records marked helpful for a record, or for the same search text, come first; those "
        "marked not helpful last (see recommender/verdicts.py).")


class ServerConfig(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    api_keys: list[str] = Field(default_factory=list, description="Read-write keys.")
    read_keys: list[str] = Field(default_factory=list, description="Read-only keys.")
    max_body_bytes: int = Field(2_000_000, ge=1024)
    max_document_bytes: int = Field(20_000_000, ge=1024, description="Limit for an SOP file sent to /v1/documents.")
    max_text_chars: int = Field(20_000, ge=10)
    max_batch: int = Field(1000, ge=1)
    persist_every: int = Field(500, ge=1, description="Snapshot the live index after this many writes.")
    follow_seconds: float = Field(5.0, ge=0, description="How often the server applies records other processes "
                                                          "wrote to the store (0 = never).")
    reconnect_seconds: float = Field(2.0, gt=0, description="While the record store or the search backend cannot "
                                     "be reached at start, how often the server tries again (it answers /healthz, "
                                     "and 503 with Retry-After elsewhere, meanwhile).")
    access_log: bool = Field(True, description="Log one line per request: client, method, path (no query "
                                                "string), status, milliseconds, request id.")
    change_log_keep: int = Field(
        100_000, ge=0, description="Change-log rows kept from before the current snapshot when one is published, "
        "for servers still catching up (0 = never prune).")


class BackendConfig(_Section):
    """Which engine holds the dense vectors, keyword postings and filter fields (indexing/backends.py)."""

    kind: Literal["local", "milvus"] = Field(
        "local", description="'local': FAISS + caselink's BM25L in this process, snapshotted under data_dir/index. "
        "'milvus': a Milvus collection reached through pymilvus (Milvus Lite server, standalone or a cluster).")
    uri: str = Field("http://127.0.0.1:19530", description="Milvus address: http(s)://host:port; https for TLS.")
    token: SecretStr | None = Field(None, description="Milvus credentials, 'user:password' or an API key. Never "
                                    "logged or reported; prefer the environment or token_file over the TOML file.")
    token_file: Path | None = Field(None, description="A file holding the token (first line), e.g. a mounted secret.")
    collection: str = Field("caselink", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,200}$",
                            description="Milvus collection name (a second one, '<name>_stats', holds term statistics).")
    consistency: Literal["Strong", "Session", "Bounded", "Eventually"] = Field(
        "Strong", description="Milvus read consistency. Strong gives read-your-writes across every caselink process "
        "(a write is searchable when the call returns); the weaker levels answer sooner but may miss recent writes.")
    dense_index: Literal["FLAT", "HNSW", "IVF_FLAT", "AUTOINDEX"] = Field(
        "FLAT", description="Milvus index on the dense vectors: FLAT is exact (as local below vectors.exact_below); "
        "IVF_FLAT, HNSW or AUTOINDEX for millions of records. A change is applied by 'caselink index', which "
        "rebuilds the dense index in place (the records stay).")
    dense_nlist: int = Field(1024, ge=1, le=65536, description="IVF_FLAT: lists per index, fixed when the dense "
                             "index is built (Milvus builds one per sealed segment).")
    dense_nprobe: int = Field(64, ge=1, le=65536, description="IVF_FLAT: lists searched per query; more is slower "
                              "and closer to exact.")
    timeout: float = Field(30.0, gt=0, description="Seconds one Milvus call may take.")

    @model_validator(mode="after")
    def _one_token(self) -> "BackendConfig":
        if self.token is not None and self.token_file is not None:
            raise ValueError("give token or token_file, not both")
        return self

    def secret(self) -> str:
        """The token to connect with ('' when none): from ``token``, else ``token_file``."""
        if self.token is not None:
            return self.token.get_secret_value()
        if self.token_file is not None:
            try:
                lines = self.token_file.read_text(encoding="utf-8").splitlines()
            except OSError as exc:
                raise ConfigError(f"backend.token_file {self.token_file} could not be read: {exc.strerror}") from None
            return lines[0].strip() if lines else ""
        return ""


SYNCED_FIELDS = ("product", "model", "module", "error_codes", "category", "priority")


class RTSourceConfig(_Section):
    """Request Tracker 5 over REST2 (indexing/sources/rt.py); README "Connecting your ticketing system"."""

    url: str = Field(..., min_length=1, description="RT's base URL, e.g. https://rt.example.com (REST2 is under "
                     "/REST/2.0).")
    token_env: str = Field("CASELINK_RT_TOKEN", description="Environment variable holding the RT auth token.")
    token_file: Path | None = Field(None, description="File holding the RT auth token (used when the variable "
                                    "is unset). The token is never logged.")
    queues: list[str] = Field(["General"], min_length=1, description="Queues whose tickets are synced.")
    id_prefix: str = Field("RT-", description="Record id = prefix + ticket number.")
    kind: Literal["case", "problem", "sop"] = Field("case", description="Kind of a synced ticket.")
    queue_kinds: dict[str, Literal["case", "problem", "sop"]] = Field(
        default_factory=dict, description="Kind per queue, e.g. {Problems = \"problem\"}.")
    fields: dict[str, str] = Field(default_factory=dict, description="caselink field -> RT custom field name, "
                                   "for " + ", ".join(SYNCED_FIELDS) + ".")
    attributes: dict[str, str] = Field(default_factory=dict, description="Record attribute key -> RT custom field "
                                       "name, e.g. {customer = \"Customer\"} (keys as README \"attributes\"; a value "
                                       "over the record's bound leaves that attribute out, with a warning).")
    links: list[str] = Field(["refers-to", "referred-to-by", "depends-on", "depended-on-by", "member-of",
                              "has-member"], description="RT link types kept as caselink links.")
    timezone: str = Field("UTC", description="The RT user's time zone (RT reads search dates in it).")
    interval_seconds: float = Field(30.0, ge=1, description="How often `caselink serve` pulls changes.")
    page_size: int = Field(100, ge=1, le=100, description="Tickets per REST2 search page (RT allows 100).")
    timeout_seconds: float = Field(30.0, gt=0)
    retries: int = Field(4, ge=0, le=10, description="Retries with backoff when RT is down or busy.")
    workers: int = Field(2, ge=1, le=16, description="Pages of tickets read from RT at once (the next ones "
                         "while one is written to caselink).")
    comment: bool = Field(True, description="Post caselink's related records on new tickets as a private "
                          "comment (tickets created after the first sync; never correspondence).")
    comment_k: int = Field(3, ge=1, le=20, description="Related cases, problem orders and SOP sections per comment.")
    page_url: str = Field("", description="caselink's page as engineers reach it, for the links in the comment "
                          "(default http://<server.host>:<server.port>).")

    @field_validator("fields")
    @classmethod
    def _known_fields(cls, v: dict[str, str]) -> dict[str, str]:
        for key in v:
            if key not in SYNCED_FIELDS:
                raise ValueError(f"unknown caselink field '{key}', expected one of {', '.join(SYNCED_FIELDS)}")
        return v


class SourcesConfig(_Section):
    rt: RTSourceConfig | None = Field(None, description="Request Tracker; unset = not synced.")


class StoreConfig(_Section):
    """Where the record store lives (see README, Deployment)."""

    url: str = Field("", description="'' = records.sqlite in data_dir (SQLite, one host); a SQLite file path; or "
                     "postgresql://user@host:5432/dbname, shared by every caselink process. The password can be "
                     "in the URL, in PGPASSWORD, or in a pgpass file (PGPASSFILE or ?passfile=); it is never shown.")

    @field_validator("url")
    @classmethod
    def _known(cls, v: str) -> str:
        v = v.strip()
        if "://" in v and not v.startswith(("sqlite:///", "postgresql://", "postgres://", "postgresql+psycopg://")):
            raise ValueError("expected a SQLite file path or a postgresql:// URL")
        return v


class Settings(_Section):
    data_dir: Path = Field(Path("var"), description="Holds records.sqlite, the embedding cache and index/.")
    store: StoreConfig = Field(default_factory=StoreConfig)
    text: TextConfig = Field(default_factory=TextConfig)
    encoder: EncoderConfig = Field(default_factory=EncoderConfig)
    bm25: BM25Config = Field(default_factory=BM25Config)
    vectors: VectorConfig = Field(default_factory=VectorConfig)
    rank: RankConfig = Field(default_factory=RankConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)
    backend: BackendConfig = Field(default_factory=BackendConfig)
    sources: SourcesConfig = Field(default_factory=SourcesConfig)

    @field_validator("data_dir")
    @classmethod
    def _expand(cls, v: Path) -> Path:
        return Path(os.path.expanduser(v))

    @property
    def store_path(self) -> Path:
        return self.data_dir / "records.sqlite"

    @property
    def store_url(self) -> str:
        """The record store: ``store.url``, or :attr:`store_path` when it is not set."""
        return self.store.url or str(self.store_path)

    @property
    def cache_path(self) -> Path:
        return self.data_dir / "embeddings.sqlite"

    @property
    def sources_path(self) -> Path:
        return self.data_dir / "sources.sqlite"

    @property
    def index_root(self) -> Path:
        return self.data_dir / "index"


_ENV = {
    "CASELINK_DATA_DIR": ("data_dir",),
    "CASELINK_STORE_URL": ("store", "url"),
    "CASELINK_MODEL": ("encoder", "model"),
    "CASELINK_THREADS": ("encoder", "threads"),
    "CASELINK_HOST": ("server", "host"),
    "CASELINK_PORT": ("server", "port"),
    "CASELINK_API_KEYS": ("server", "api_keys"),
    "CASELINK_READ_KEYS": ("server", "read_keys"),
    "CASELINK_BACKEND": ("backend", "kind"),
    "CASELINK_BACKEND_URI": ("backend", "uri"),
    "CASELINK_BACKEND_TOKEN": ("backend", "token"),
    "CASELINK_BACKEND_TOKEN_FILE": ("backend", "token_file"),
    "CASELINK_BACKEND_COLLECTION": ("backend", "collection"),
}


# A request field whose upper bound is a setting carries ``{LIMIT_KEY: "rank.max_k"}`` in its JSON
# schema (:func:`limited_by`); the API resolves it against the settings it serves with, so the
# schema states the value the service enforces (api/openapi.py), whatever the configuration.
LIMIT_KEY = "x-caselink-limit"


def limited_by(setting: str) -> dict[str, str]:
    """``json_schema_extra`` for a field bounded by ``setting`` (dotted, e.g. ``"rank.max_k"``)."""
    section: type = Settings
    for part in setting.split("."):  # a misspelt name fails at import, not when the schema is served
        if part not in getattr(section, "model_fields", {}):
            raise KeyError(f"no setting {setting}")
        section = section.model_fields[part].annotation
    if section is not int:
        raise TypeError(f"{setting} is not a numeric limit")
    return {LIMIT_KEY: setting}


def limit(settings: Settings, setting: str) -> int:
    """The value of the dotted ``setting`` in ``settings``."""
    value: object = settings
    for part in setting.split("."):
        value = getattr(value, part)
    return int(value)  # type: ignore[call-overload]


def load_settings(path: str | Path | None = None, env: dict[str, str] | None = None, **overrides) -> Settings:
    """Build settings from defaults, an optional TOML file, the environment and keyword overrides.

    ``overrides`` use dotted names with ``__`` for nesting, e.g. ``rank__mode="keyword"``.
    Raises :class:`ConfigError` naming the file and the offending field.
    """
    env = dict(os.environ) if env is None else env
    raw: dict = {}
    path = path or env.get("CASELINK_CONFIG")
    if path is None and Path("caselink.toml").is_file():
        path = "caselink.toml"
    source = "defaults"
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {p} does not exist")
        try:
            raw = tomllib.loads(p.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {p} is not valid TOML: {exc}") from None
        source = str(p)
    for var, keys in _ENV.items():
        if var in env and env[var] != "":
            value: object = env[var]
            if keys[-1] in ("api_keys", "read_keys"):
                value = [k.strip() for k in env[var].split(",") if k.strip()]
            _set(raw, keys, value)
    for name, value in overrides.items():
        if value is not None:
            _set(raw, tuple(name.split("__")), value)
    try:
        return Settings.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(x) for x in first["loc"])
        raise ConfigError(f"{source}: setting '{field}': {first['msg']}") from None


def _set(tree: dict, keys: tuple[str, ...], value: object) -> None:
    for key in keys[:-1]:
        tree = tree.setdefault(key, {})
    tree[keys[-1]] = value
