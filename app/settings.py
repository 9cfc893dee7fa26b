"""One settings object, read from the environment, in nested groups.

Environment names are flat (``DATABASE_URL``, ``REDIS_URL`` …) because that is what
operators and secret managers hand out; in code they live in groups (``settings.db.url``).
Only the app factory, the composition roots (``app.roots`` with ``app.wiring``), ``deps.py``
and the CLI read settings; everything else gets plain values passed in.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class LogFormat(StrEnum):
    JSON = "json"
    TEXT = "text"


def _group_config() -> SettingsConfigDict:
    # Each field has one explicit env name (its alias); populate_by_name lets tests build
    # groups with the Python field names.
    return SettingsConfigDict(populate_by_name=True, extra="ignore", case_sensitive=False)


class _AliasOnlyEnv(EnvSettingsSource):
    """Environment variables by their alias (``DATABASE_URL``) only. ``populate_by_name``
    would also read variables named after the fields (``URL``, ``LEVEL``, ``FORMAT``, ``DB``,
    ``LOG``…), which shells set for their own purposes: the README's ``export URL=…`` made
    every command read it as the database URL."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        for key, env_name, is_complex in self._extract_field_info(field, field_name):
            value = self.env_vars.get(env_name)
            if key != field_name and value is not None:
                return value, key, is_complex
        return None, field_name, False


class _Settings(BaseSettings):
    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, _AliasOnlyEnv(settings_cls), dotenv_settings, file_secret_settings


def _split_csv(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class DatabaseSettings(_Settings):
    model_config = _group_config()

    url: str | None = Field(None, alias="DATABASE_URL")
    data_dir: Path = Field(Path("data"), alias="DATA_DIR")
    pool_size: int = Field(10, alias="DATABASE_POOL_SIZE", ge=1, le=200)
    connect_timeout: float = Field(5.0, alias="DATABASE_CONNECT_TIMEOUT", gt=0)
    startup_timeout: float = Field(60.0, alias="DATABASE_STARTUP_TIMEOUT", ge=0)
    use_timescaledb: bool = Field(True, alias="USE_TIMESCALEDB")

    @property
    def is_sqlite(self) -> bool:
        return self.url is None or self.url.startswith("sqlite")


class RedisSettings(_Settings):
    model_config = _group_config()

    url: str | None = Field(None, alias="REDIS_URL")
    prefix: str = Field("ticker:", alias="REDIS_PREFIX")
    socket_timeout: float = Field(2.0, alias="REDIS_SOCKET_TIMEOUT", gt=0)


class AuthSettings(_Settings):
    model_config = _group_config()

    api_key: str | None = Field(None, alias="API_KEY", repr=False)
    tokens_dir: Path = Field(Path("tokens"), alias="TOKENS_DIR")
    tokens_poll_seconds: float = Field(2.0, alias="TOKENS_POLL_SECONDS", gt=0)
    rate_limit: float = Field(100.0, alias="RATE_LIMIT_PER_SECOND", gt=0)
    rate_limit_burst: int | None = Field(None, alias="RATE_LIMIT_BURST", ge=1)
    unauthenticated_rate_limit: float = Field(5.0, alias="UNAUTHENTICATED_RATE_LIMIT", gt=0)

    def has_key_files(self) -> bool:
        # Dotfiles are ignored like the key loader does (k8s secret mounts keep ``..data/``).
        return self.tokens_dir.is_dir() and any(
            not p.name.startswith(".") for p in self.tokens_dir.glob("*.json")
        )


class LogSettings(_Settings):
    model_config = _group_config()

    format: LogFormat = Field(LogFormat.JSON, alias="LOG_FORMAT")
    level: str = Field("INFO", alias="LOG_LEVEL")
    dir: Path | None = Field(None, alias="LOG_DIR")
    access_log: bool = Field(True, alias="ACCESS_LOG")

    @field_validator("level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError(f"unknown log level {value!r}")
        return level


class RegistrySettings(_Settings):
    model_config = _group_config()

    refresh_seconds: float = Field(300.0, alias="INSTRUMENT_REFRESH_SECONDS", gt=0)
    seed_csv: Path | None = Field(None, alias="INSTRUMENTS_SEED_CSV")


class OrderSettings(_Settings):
    model_config = _group_config()

    max_batch_orders: int = Field(500, alias="MAX_BATCH_ORDERS", ge=1, le=10_000)
    max_order_quantity: Decimal = Field(Decimal(1_000_000), alias="RISK_MAX_ORDER_QUANTITY", gt=0)
    max_notional: Decimal = Field(Decimal(1_000_000_000), alias="RISK_MAX_NOTIONAL", gt=0)
    max_open_orders: int = Field(100_000, alias="RISK_MAX_OPEN_ORDERS", ge=1)
    price_band_percent: Decimal = Field(Decimal(10), alias="RISK_PRICE_BAND_PERCENT", ge=0)
    breaker_percent: Decimal = Field(Decimal(20), alias="CIRCUIT_BREAKER_PERCENT", ge=0)
    breaker_window_seconds: float = Field(60.0, alias="CIRCUIT_BREAKER_WINDOW_SECONDS", gt=0)
    recent_batches: int = Field(100, alias="RECENT_BATCHES", ge=1, le=1000)
    # The trading day (README "The trading day"): unset, every exchange trades 24x7.
    trading_calendar: str | None = Field(None, alias="TRADING_CALENDAR")
    max_position: Decimal | None = Field(None, alias="RISK_MAX_POSITION", gt=0)
    session_check_seconds: float = Field(1.0, alias="SESSION_CHECK_SECONDS", gt=0, le=60)


class TickerSettings(_Settings):
    """WebSocket streams and tick fan-out (README, "Ticker and WebSockets")."""

    model_config = _group_config()

    max_instruments_per_connection: int = Field(
        1000, alias="WS_MAX_INSTRUMENTS_PER_CONNECTION", ge=1, le=100_000
    )
    max_connections_per_key: int = Field(50, alias="WS_MAX_CONNECTIONS_PER_KEY", ge=1)
    heartbeat_seconds: float = Field(20.0, alias="WS_HEARTBEAT_SECONDS", gt=0)
    idle_timeout_seconds: float = Field(120.0, alias="WS_IDLE_TIMEOUT_SECONDS", gt=0)
    auth_timeout_seconds: float = Field(5.0, alias="WS_AUTH_TIMEOUT_SECONDS", gt=0)
    send_queue_limit: int = Field(10_000, alias="WS_SEND_QUEUE_LIMIT", ge=1)
    slow_client_seconds: float = Field(10.0, alias="WS_SLOW_CLIENT_SECONDS", gt=0)
    registry_ttl_seconds: float = Field(30.0, alias="TICKER_REGISTRY_TTL_SECONDS", ge=1)
    flush_interval_ms: float = Field(5.0, alias="TICKER_FLUSH_INTERVAL_MS", ge=0, le=1000)


class WebhookSettings(_Settings):
    model_config = _group_config()

    max_endpoints_per_account: int = Field(
        10, alias="WEBHOOK_MAX_ENDPOINTS_PER_ACCOUNT", ge=1, le=1000
    )
    allow_private_targets: bool = Field(False, alias="WEBHOOK_ALLOW_PRIVATE_TARGETS")
    allow_loopback: bool = Field(False, alias="WEBHOOK_ALLOW_LOOPBACK")
    connect_timeout: float = Field(3.0, alias="WEBHOOK_CONNECT_TIMEOUT", gt=0)
    read_timeout: float = Field(10.0, alias="WEBHOOK_READ_TIMEOUT", gt=0)
    concurrency: int = Field(64, alias="WEBHOOK_CONCURRENCY", ge=1, le=1000)
    endpoint_concurrency: int = Field(4, alias="WEBHOOK_ENDPOINT_CONCURRENCY", ge=1, le=100)
    retry_initial_seconds: float = Field(5.0, alias="WEBHOOK_RETRY_INITIAL_SECONDS", gt=0)
    retry_max_seconds: float = Field(3600.0, alias="WEBHOOK_RETRY_MAX_SECONDS", gt=0)
    retry_horizon_seconds: float = Field(86400.0, alias="WEBHOOK_RETRY_HORIZON_SECONDS", gt=0)
    poll_seconds: float = Field(1.0, alias="WEBHOOK_POLL_SECONDS", gt=0)
    secret_grace_seconds: float = Field(86400.0, alias="WEBHOOK_SECRET_GRACE_SECONDS", ge=0)
    retention_days: float = Field(7.0, alias="WEBHOOK_RETENTION_DAYS", gt=0)


class Role(StrEnum):
    ALL = "all"
    GATEWAY = "gateway"
    MATCHER = "matcher"


class ClusterSettings(_Settings):
    """Scale-out: which role this process plays (README, "Scaling out")."""

    model_config = _group_config()

    role: Role = Field(Role.ALL, alias="ROLE")
    shards: int = Field(1, alias="MATCHER_SHARDS", ge=1, le=1024)
    shard_id: int = Field(0, alias="SHARD_ID", ge=0)
    shard_timeout: float = Field(5.0, alias="SHARD_TIMEOUT_SECONDS", gt=0)
    lease_seconds: float = Field(10.0, alias="MATCHER_LEASE_SECONDS", gt=0)
    instance_id: str | None = Field(None, alias="INSTANCE_ID", max_length=64)

    @model_validator(mode="after")
    def _shard_in_range(self) -> ClusterSettings:
        if self.shard_id >= self.shards:
            raise ValueError(f"SHARD_ID {self.shard_id} must be below MATCHER_SHARDS {self.shards}")
        return self


class Settings(_Settings):
    """Everything the service can be told. Groups: db, redis, auth, log, registry."""

    model_config = SettingsConfigDict(populate_by_name=True, extra="ignore", case_sensitive=False)

    environment: Environment = Field(Environment.DEVELOPMENT, alias="ENVIRONMENT")
    host: str = Field("127.0.0.1", alias="HOST")
    port: int = Field(8000, alias="PORT", ge=1, le=65535)
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list, alias="CORS_ORIGINS")
    health_check_timeout: float = Field(1.0, alias="HEALTH_CHECK_TIMEOUT", gt=0)
    health_check_interval: float = Field(15.0, alias="HEALTH_CHECK_INTERVAL_SECONDS", gt=0)
    max_body_bytes: int = Field(1_048_576, alias="MAX_BODY_BYTES", ge=1024)
    shutdown_grace_seconds: float = Field(15.0, alias="SHUTDOWN_GRACE_SECONDS", gt=0)
    # Each account's cash in the Kite Connect margins (a key file's "cash" overrides it).
    kite_cash: float = Field(1_000_000.0, alias="KITE_CASH", gt=0)

    db: DatabaseSettings = Field(default_factory=DatabaseSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    log: LogSettings = Field(default_factory=LogSettings)
    registry: RegistrySettings = Field(default_factory=RegistrySettings)
    orders: OrderSettings = Field(default_factory=OrderSettings)
    cluster: ClusterSettings = Field(default_factory=ClusterSettings)
    webhooks: WebhookSettings = Field(default_factory=WebhookSettings)
    ticker: TickerSettings = Field(default_factory=TickerSettings)

    _split_origins = field_validator("cors_origins", mode="before")(_split_csv)

    @property
    def is_production(self) -> bool:
        return self.environment is Environment.PRODUCTION

    def production_problems(self) -> list[str]:
        """What stops this configuration from running in production (empty when fine)."""
        if not self.is_production:
            return []
        problems = []
        if not self.db.url:
            problems.append("DATABASE_URL is not set")
        elif self.db.is_sqlite:
            problems.append("DATABASE_URL is SQLite; production needs PostgreSQL")
        if not self.redis.url:
            problems.append("REDIS_URL is not set")
        if not self.auth.api_key and not self.auth.has_key_files():
            problems.append(
                f"no API key configured (set API_KEY or add key files to {self.auth.tokens_dir}/)"
            )
        return problems


class ConfigError(Exception):
    """The configuration cannot run; the message is one line meant for the operator."""


def load_settings(**overrides: Any) -> Settings:
    settings = Settings(**overrides)
    problems = settings.production_problems()
    if problems:
        raise ConfigError("refusing to start in production: " + "; ".join(problems))
    return settings
