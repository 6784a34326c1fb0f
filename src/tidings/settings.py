"""Typed settings, read from ``TIDINGS_*`` environment variables or a TOML file.

Precedence: explicit keyword arguments, then environment, then the file named by
``TIDINGS_CONFIG`` (default ``tidings.toml`` in the working directory, if present).
Secrets left unset are generated on first run by :mod:`tidings.credentials`.
"""

from __future__ import annotations

import os
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

CommaList = Annotated[list[str], NoDecode]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TIDINGS_", extra="ignore")

    # Storage and fan-out
    database_url: str = Field(
        "sqlite+aiosqlite:///./tidings.db",
        description="SQLAlchemy URL: sqlite+aiosqlite:///path or postgresql+asyncpg://...",
    )
    broker_url: str = Field("memory://", description="memory:// or redis://host:port/db")
    broker_prefix: str | None = Field(
        None,
        description="prefix of the broker's Redis channels; default tidings:<db>: (the "
        "database number of the broker URL), so deployments on other numbers stay apart",
    )

    # Authentication
    jwt_secret: str | None = Field(None, description="HS256 secret for end-user tokens")
    jwt_public_key: str | None = Field(
        None, description="PEM public key (or path to one) for RS256/ES256 tokens"
    )
    jwt_algorithms: CommaList = Field(
        default_factory=list,
        description="accepted JWT algorithms; default HS256 with a secret, "
        "RS256,ES256 with a public key",
    )
    jwt_audience: str | None = Field(None, description="required `aud` claim, if set")
    jwt_issuer: str | None = Field(None, description="required `iss` claim, if set")
    jwt_leeway: int = Field(10, ge=0, description="seconds of clock skew allowed on `exp`")
    api_keys: CommaList = Field(
        default_factory=list, description="comma-separated API keys for backends"
    )
    secrets_file: str = Field(
        ".tidings/secrets.json", description="where generated secrets are kept (mode 0600)"
    )

    # Serving
    host: str = Field("127.0.0.1", description="address to bind")
    port: int = Field(8000, ge=0, le=65535, description="port to bind")
    workers: int = Field(1, ge=1, description="server processes; >1 needs the Redis broker")
    dev: bool | None = Field(
        None,
        description="development mode (demo page, dev tokens); default on only when "
        "both the JWT secret and the API key were generated, off when either is configured",
    )
    allowed_origins: CommaList = Field(
        default_factory=list,
        description="origins allowed to open streams; empty means same host only; * for any",
    )
    public_url: str | None = Field(None, description="URL printed at start and used by `send`")

    headers_timeout: float = Field(
        10.0,
        gt=0,
        description="seconds a client may take to send a request's headers (an upgrade "
        "included) before its connection is closed",
    )

    # Realtime
    ws_transport: Literal["direct", "asgi"] = Field(
        "direct",
        description="`/ws` under `tidings serve`: `direct` (a WebSocket protocol of our own, "
        "no ASGI, no task per idle connection) or `asgi` (the ASGI endpoint, as other "
        "ASGI servers run it)",
    )
    sse_transport: Literal["direct", "asgi"] = Field(
        "direct",
        description="`/api/v1/me/stream` under `tidings serve`: `direct` (served by the HTTP "
        "protocol itself, no ASGI, no task per idle stream) or `asgi` (the ASGI endpoint, as "
        "other ASGI servers run it)",
    )
    heartbeat: float = Field(30.0, gt=0, description="seconds between pings")
    max_connections_per_user: int = Field(20, ge=1)
    max_frame_bytes: int = Field(65_536, ge=256, description="largest client frame accepted")
    inbound_rate: float = Field(20.0, gt=0, description="client frames per second allowed")
    inbound_burst: int = Field(60, ge=1, description="client frames allowed in a burst")
    read_rate: float = Field(
        5.0,
        gt=0,
        description="inbox reads per second per user (WebSocket `list`, REST inbox and "
        "unread count), shared by all of the user's connections in a process",
    )
    read_burst: int = Field(20, ge=1, description="inbox reads a user may make in a burst")
    outbox_size: int = Field(
        1_000, ge=1, description="frames queued per connection before it is dropped as slow"
    )
    outbox_bytes: int = Field(
        1_048_576,
        ge=65_536,
        description="bytes a WebSocket or SSE client may fall behind before it is dropped as slow",
    )
    resume_limit: int = Field(
        500, ge=1, description="most notifications replayed on resume; beyond, client refetches"
    )
    feed_poll_interval: float = Field(
        1.0,
        gt=0,
        le=60,
        description="seconds between reads of the store's log when no wake-up came "
        "(bounds delivery delay across processes while Redis is unreachable)",
    )
    shutdown_grace: float = Field(5.0, ge=0, description="seconds allowed for graceful shutdown")

    # Limits on what backends send
    max_title_length: int = Field(200, ge=1)
    max_body_length: int = Field(5_000, ge=1)
    max_data_bytes: int = Field(16_384, ge=2)
    max_recipients: int = Field(1_000, ge=1, description="users + roles in one create call")
    max_request_bytes: int = Field(262_144, ge=1_024)
    create_rate: float = Field(
        0.0,
        ge=0,
        description="creates per second per API key (notifications and topic messages), "
        "shared by every process through Redis; 0 = off",
    )
    create_burst: int = Field(
        100, ge=1, description="creates an API key may make in a burst over create_rate"
    )

    # Operations
    stats_interval: float = Field(
        2.0,
        gt=0,
        le=60,
        description="seconds between each process's published figures (cluster-wide "
        "stats and connections); a process silent for two intervals drops out",
    )
    log_format: str = Field("text", pattern="^(text|json)$", description="text or json logs")

    # Webhooks
    webhook_urls: CommaList = Field(
        default_factory=list,
        description="comma-separated http(s) URLs that receive every webhook event; "
        "empty: no webhooks",
    )
    webhook_secret: str | None = Field(
        None, description="key of the Tidings-Signature HMAC; required with webhook_urls"
    )
    webhook_timeout: float = Field(
        10.0, gt=0, le=120, description="seconds a receiver has to answer one delivery"
    )
    webhook_concurrency: int = Field(
        16, ge=1, le=1_000, description="deliveries one process sends at once"
    )
    webhook_max_attempts: int = Field(
        12, ge=1, description="attempts before a delivery is given up (marked failed)"
    )
    webhook_max_age: float = Field(
        86_400.0, gt=0, description="seconds after an event after which it is given up"
    )

    # Topics and rooms
    topic_history: int = Field(
        100, ge=0, le=10_000, description="messages kept per topic for replay (0: none)"
    )
    topic_history_ttl: float = Field(
        86_400.0, gt=0, description="seconds a topic's history outlives its last message (Redis)"
    )
    topic_rate: float = Field(
        2_000.0,
        gt=0,
        description="topic messages per second sent as they come to one connection; "
        "beyond, they are coalesced into one `batch` frame every 100 ms",
    )
    topic_batch: int = Field(
        100, ge=1, le=10_000, description="newest messages one coalesced `batch` frame keeps"
    )
    publish_rate: float = Field(10.0, gt=0, description="client publishes per second per user")
    publish_burst: int = Field(20, ge=1, description="client publishes per user in a burst")
    publish_max_bytes: int = Field(
        8_192, ge=64, description="largest `data` of a client publish (JSON bytes)"
    )
    presence_ttl: float = Field(
        10.0,
        ge=1,
        description="seconds after which a silent process's presence (rooms, users online) "
        "is dropped (Redis)",
    )

    # Retention
    retention_max_items: int = Field(1_000, ge=1, description="newest items kept per inbox")
    retention_max_age_days: float = Field(30.0, gt=0, description="days an item is kept")
    sweep_interval: float = Field(60.0, gt=0, description="seconds between expiry sweeps")

    @field_validator("jwt_algorithms", "api_keys", "allowed_origins", "webhook_urls", mode="before")
    @classmethod
    def _split_commas(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("webhook_urls")
    @classmethod
    def _webhook_urls_are_http(cls, urls: list[str]) -> list[str]:
        for url in urls:
            parsed = urlsplit(url)
            if parsed.scheme not in ("http", "https") or not parsed.hostname:
                raise ValueError(f"{url[:100]!r} is not an http:// or https:// URL with a host")
        if len(set(urls)) != len(urls):
            raise ValueError("a URL is listed twice")
        return urls

    @model_validator(mode="after")
    def _webhooks_are_signed(self) -> Settings:
        if self.webhook_urls and not self.webhook_secret:
            raise ValueError(
                "TIDINGS_WEBHOOK_URLS needs TIDINGS_WEBHOOK_SECRET: every delivery is signed"
            )
        return self

    @model_validator(mode="after")
    def _replay_fits_the_outbox(self) -> Settings:
        # A resume replays through the connection's outbox: a replay larger than the
        # outbox would close the resuming client as a slow consumer.
        if self.outbox_size < self.resume_limit:
            raise ValueError(
                f"outbox_size ({self.outbox_size}) must be at least resume_limit "
                f"({self.resume_limit})"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        config_file = os.environ.get("TIDINGS_CONFIG", "tidings.toml")
        toml = TomlConfigSettingsSource(settings_cls, toml_file=config_file)
        return (init_settings, env_settings, toml)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def retention_max_age_ms(self) -> int:
        return int(self.retention_max_age_days * 86_400_000)
