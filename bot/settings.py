"""The one typed settings object: every knob of the bot, read from the environment or `.env`.

Nothing else in the package reads the environment; a `Settings` instance is built once at the
edge (CLI, bot start-up, tests) and passed in.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def home_dir() -> Path:
    """The folder relative paths in the settings resolve against: SOURCEBOT_HOME; else the
    current folder when it holds a `.env`; else the project checkout; else the current folder."""
    if home := os.environ.get("SOURCEBOT_HOME"):
        return Path(home).expanduser().resolve()
    cwd = Path.cwd()
    if (cwd / ".env").is_file() or not (PROJECT_ROOT / "pyproject.toml").is_file():
        return cwd
    return PROJECT_ROOT


class Settings(BaseSettings):
    """All configuration. Field names map to upper-case environment variables."""

    model_config = SettingsConfigDict(
        env_file=(PROJECT_ROOT / ".env", home_dir() / ".env", ".env"), env_file_encoding="utf-8", extra="ignore"
    )

    # --- sources and index -------------------------------------------------------------
    sources_dir: Path = Field(Path("sources"), description="Folder of .txt/.md source files.")
    vectorstore_dir: Path = Field(Path("vectorstore"), description="On-disk Chroma location.")
    collection_prefix: str = Field("sources", description="Prefix of the Chroma collections.")
    prompts_dir: Path = Field(PROJECT_ROOT / "prompts", description="Prompt template folder.")
    max_source_bytes: int = Field(5_000_000, ge=1, description="Larger source files are rejected.")
    max_chunks_per_source: int = Field(10_000, ge=0, description="A source cut into more chunks is not indexed (0: no limit).")
    max_chunks_per_base: int = Field(100_000, ge=0, description="A knowledge base is not built past this many chunks (0: no limit).")
    data_dir: Path = Field(Path("data"), description="Uploaded files, the SQLite database and caches (lexical indexes, sentence vectors) live here.")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL of the state database (default: SQLite file in DATA_DIR)."
    )

    # --- web sources ----------------------------------------------------------------------
    allow_private_urls: str = Field(
        "false",
        description="true: web sources may resolve to private/loopback addresses; or a comma list of "
        "networks to allow (e.g. 127.0.0.1/32). Default false (SSRF protection).",
    )
    fetch_user_agent: str = Field(
        "sourcebot/0.1 (documentation indexer; honours robots.txt)", description="User-Agent of web fetches."
    )
    fetch_timeout: float = Field(15.0, gt=0, description="Seconds per read of a web request; 4x for a whole one.")
    crawl_max_pages: int = Field(50, ge=1, le=5000, description="Default page limit of a crawl.")
    crawl_max_depth: int = Field(3, ge=0, le=20, description="Default link depth of a crawl.")
    crawl_timeout: float = Field(300.0, gt=0, description="Seconds a whole crawl may take.")
    refresh_interval_hours: float = Field(
        24.0, ge=0.0, description="How often a web source or crawl is fetched again, unless it was given its own "
        "interval (`refresh:`); 0: never.")
    refresh_retry_minutes: float = Field(
        15.0, gt=0.0, description="After a failed refresh the next try waits this long, doubling with each failure "
        "in a row, up to REFRESH_MAX_BACKOFF_HOURS.")
    refresh_max_backoff_hours: float = Field(24.0, gt=0.0, description="The longest wait between failed refreshes.")

    # --- Chroma server mode ---------------------------------------------------------------
    chroma_host: str | None = None
    chroma_port: int = 8000
    chroma_ssl: bool = False
    chroma_auth_header: SecretStr | None = Field(
        None, description="Value of the Authorization header sent to the Chroma server."
    )
    index_refresh_seconds: float = Field(
        30.0, ge=0.0, description="Server mode: how often to look for an index another process published (0: never)."
    )

    # --- chunking and retrieval ---------------------------------------------------------
    chunk_size: int = Field(800, ge=100, description="Target chunk length in characters.")
    chunk_overlap: int = Field(160, ge=0, description="Characters of sentence overlap.")
    top_k: int = Field(4, ge=1, le=20, description="Chunks given to the answerer.")
    hybrid_search: bool = Field(True, description="Fuse dense and BM25 rankings (RRF).")

    # --- embeddings --------------------------------------------------------------------
    embedding_threads: int = Field(2, ge=1, le=64, description="onnxruntime threads.")
    embedding_batch_size: int = Field(
        2, ge=1, le=256, description="Texts per inference; small batches measured fastest and leanest on 2 cores."
    )

    # --- answering ---------------------------------------------------------------------
    llm_provider: Literal["extractive", "openai"] | None = Field(
        None, description="Unset: openai when OPENAI_API_KEY or OPENAI_BASE_URL is set."
    )
    openai_api_key: SecretStr | None = None
    openai_base_url: str | None = None
    openai_model: str = "gpt-4o-mini"
    openai_embedding_model: str | None = None
    openai_structured_output: Literal["auto", "off"] = Field(
        "auto", description="auto: ask for JSON-schema answers, falling back to text where unsupported."
    )
    request_timeout: float = Field(30.0, gt=0)
    max_retries: int = Field(2, ge=0, le=10)
    max_output_tokens: int = Field(512, ge=16)
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    context_token_budget: int = Field(3000, ge=200, description="Max tokens of retrieved text.")
    min_answer_score: float = Field(
        0.38, description="Extractive answerer: best evidence below this is a refusal."
    )
    max_question_chars: int = Field(2000, ge=1)
    summary_min_bullets: int = 3
    summary_max_bullets: int = 6

    # --- discord ------------------------------------------------------------------------
    discord_token: SecretStr | None = None
    discord_guild_id: int | None = None
    allowed_channel_ids: Annotated[list[int], NoDecode] = Field(default_factory=list)
    moderator_role_ids: Annotated[list[int], NoDecode] = Field(default_factory=list)
    owner_ids: Annotated[list[int], NoDecode] = Field(
        default_factory=list, description="Discord users who run the host: may /reload the shared sources."
    )
    question_cooldown_seconds: float = Field(10.0, ge=0)
    question_cooldown_count: int = Field(3, ge=1)
    discord_api_base: str | None = Field(
        None, description="Discord REST base URL (default: Discord's); for a REST proxy or an emulator."
    )
    discord_gateway_url: str | None = Field(None, description="Gateway URL override, e.g. ws://127.0.0.1:9000/.")
    discord_requests_per_second: float = Field(
        45.0, gt=0, le=10_000,
        description="REST requests the bot sends Discord per second at most (Discord's global limit is 50; "
                    "raise it only if Discord raised yours). Interaction responses are not counted.",
    )
    stream_edit_interval: float = Field(
        1.0, ge=0.0, description="Seconds between edits of a message while a model answer streams in."
    )
    shard_count: int | None = Field(
        None, ge=1, le=10_000,
        description="Total gateway shards of the bot, across every process (unset: no sharding, one connection).",
    )
    shard_ids: Annotated[list[int], NoDecode] = Field(
        default_factory=list,
        description="Shards this process runs (comma list, each 0..SHARD_COUNT-1); empty: all of them.",
    )

    # --- conversations and feedback ------------------------------------------------------
    answer_in_thread: bool = Field(
        True, description="Answer a channel question in a thread opened on it (a server's /config overrides)."
    )
    history_turns: int = Field(4, ge=0, le=20, description="Earlier turns of a thread that go with a follow-up.")
    history_tokens: int = Field(800, ge=0, description="About this many tokens of history at most.")
    retention_days: int = Field(
        30, ge=1, description="Question, answer and feedback texts are deleted after this many days."
    )
    # moderators' corrections (bot.rag.curated)
    curated_match_threshold: float = Field(
        0.8, ge=0.0, le=1.0,
        description="A question this similar (embedding cosine) to a curated question gets the moderators' answer.",
    )
    catch_up_minutes: int = Field(
        30, ge=0, le=24 * 60,
        description="On start, answer questions addressed to the bot in the last this many minutes that it missed "
                    "while down (0: no catch-up).",
    )
    catch_up_limit: int = Field(
        50, ge=0, le=1000,
        description="At most this many missed questions are answered on start; later ones are asked to ask again.",
    )

    # --- Discord channels as sources (issue 21) ---
    channel_source_limit: int = Field(
        200, ge=1, le=5000,
        description="A channel source taking all messages keeps the newest this many (a forum: this many solved posts).",
    )
    channel_sync_delay: float = Field(
        5.0, ge=0, le=50,
        description="Seconds a channel source waits after an edit, deletion, pin or tag change before it is re-read "
                    "(changes in that time are read together).",
    )
    channel_sweep_minutes: float = Field(
        30.0, gt=0, description="Every channel source is read again this often (and on start), for what events missed.",
    )

    log_level: str = "INFO"

    @field_validator("allowed_channel_ids", "moderator_role_ids", "owner_ids", mode="before")
    @classmethod
    def _split_ids(cls, value: object) -> object:
        if isinstance(value, str):
            return [int(part) for part in value.replace(";", ",").split(",") if part.strip()]
        if isinstance(value, int):
            return [value]
        return value

    @field_validator("shard_count", mode="before")
    @classmethod
    def _empty_shard_count(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("shard_ids", mode="before")
    @classmethod
    def _split_shard_ids(cls, value: object) -> object:
        return cls._split_ids(value)

    @model_validator(mode="after")
    def _check_shards(self) -> Settings:
        if self.shard_ids and self.shard_count is None:
            raise ValueError("SHARD_IDS needs SHARD_COUNT (the total number of shards across every process)")
        if self.shard_count is not None:
            wrong = [i for i in self.shard_ids if not 0 <= i < self.shard_count]
            if wrong:
                raise ValueError(f"SHARD_IDS {wrong} out of range: with SHARD_COUNT={self.shard_count} "
                                 f"shard ids are 0..{self.shard_count - 1}")
            if len(set(self.shard_ids)) != len(self.shard_ids):
                raise ValueError(f"SHARD_IDS lists a shard twice: {self.shard_ids}")
        return self

    @model_validator(mode="after")
    def _resolve_paths(self) -> Settings:
        home = home_dir()
        for name in ("sources_dir", "vectorstore_dir", "data_dir", "prompts_dir"):
            path = getattr(self, name).expanduser()
            object.__setattr__(self, name, path if path.is_absolute() else home / path)  # not "set by the user"
        return self

    @model_validator(mode="after")
    def _choose_provider(self) -> Settings:
        if self.llm_provider is None:
            configured = self.openai_api_key is not None or bool(self.openai_base_url)
            self.llm_provider = "openai" if configured else "extractive"
        return self

    @property
    def provider(self) -> Literal["extractive", "openai"]:
        assert self.llm_provider is not None
        return self.llm_provider

    @property
    def uses_chroma_server(self) -> bool:
        return bool(self.chroma_host)

    @property
    def cache_dir(self) -> Path:
        """Work kept to save redoing it: lexical indexes, sentence vectors (deletable)."""
        return self.data_dir / "cache"
