"""Settings: one object, read once at start-up from `CHARGEWIRE_*` variables and an optional TOML file.

The TOML file is named by `CHARGEWIRE_CONFIG` (default `chargewire.toml` in the working directory when it
exists); environment variables win over it. Nothing reads the environment after start-up: the settings
object is passed explicitly to whatever needs it.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

MIN_SECRET_KEY_LENGTH = 32
DEFAULT_RETRY_SCHEDULE_S = (0.0, 5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
_DAY_S = 24 * 3600


def default_data_dir() -> Path:
    """The folder for the embedded database and demo files."""
    return Path(os.environ.get("CHARGEWIRE_DATA_DIR", "data")).resolve()


def _config_file() -> Path:
    return Path(os.environ.get("CHARGEWIRE_CONFIG", "chargewire.toml"))


def _split_commas(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    """Everything configurable about one chargewire deployment."""

    model_config = SettingsConfigDict(env_prefix="CHARGEWIRE_", extra="ignore")

    database_url: str = Field(default="", description="SQLAlchemy URL; empty means the embedded SQLite file")
    data_dir: Path = Field(default_factory=default_data_dir)
    secret_key: SecretStr | None = Field(default=None, description="Encrypts stored secrets; 32+ characters")
    tenant: str = "chargewire"
    demo_mode: bool = False

    ingest_max_batch: int = Field(default=1000, ge=1)
    ingest_max_body_bytes: int = Field(default=5 * 1024 * 1024, ge=1024)
    idempotency_retention_s: float = Field(
        default=24 * 3600, gt=0, description="How long at least a publish's Idempotency-Key is kept and honoured"
    )

    api_rate_limit_per_minute: int = Field(default=600, ge=1)
    # Budgets of their own: ingest is the CSMS's stream (far above the API's budget), and the actions that make
    # chargewire send requests elsewhere (test send, retry, resend, secret rotation) are kept far below it.
    ingest_rate_limit_per_minute: int = Field(default=600_000, ge=1)
    outgoing_rate_limit_per_minute: int = Field(default=30, ge=1)
    # Every route's body, checked before it is parsed (ingest has `ingest_max_body_bytes`), and what JSON may hold.
    api_max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    api_max_json_depth: int = Field(default=32, ge=2, le=254)
    filter_max_bytes: int = Field(default=256 * 1024, ge=256)
    filter_max_values: int = Field(default=10_000, ge=1)
    # The scheme and host of links the API writes (pagination); empty means links relative to the host.
    public_base_url: str = Field(default="", description="Like https://chargewire.example.com; never from Host")
    metrics_public: bool = Field(default=False, description="Serve /metrics without a token (metrics:read)")
    resend_cooldown_s: float = Field(default=15 * 60, ge=0)
    secret_rotation_overlap_s: float = Field(default=24 * 3600, ge=0)

    delivery_allow_networks: Annotated[list[ipaddress.IPv4Network | ipaddress.IPv6Network], NoDecode] = Field(
        default_factory=list, description="CIDRs that webhooks and Kafka brokers may resolve into despite the guard"
    )
    retry_schedule_s: Annotated[list[float], NoDecode] = Field(default=list(DEFAULT_RETRY_SCHEDULE_S))
    retry_jitter: float = Field(default=0.2, ge=0, lt=1)
    retry_after_cap_s: float = Field(default=24 * 3600, ge=0)
    webhook_connect_timeout_s: float = Field(default=5.0, gt=0)
    webhook_timeout_s: float = Field(default=15.0, gt=0)
    disable_after_failing_s: float = Field(default=5 * 24 * 3600, gt=0)
    disable_check_interval_s: float = Field(default=30.0, gt=0)

    worker_batch_size: int = Field(default=200, ge=1)
    worker_lease_s: float = Field(default=60.0, gt=0)
    worker_max_in_flight: int = Field(default=256, ge=1)
    worker_max_in_flight_per_subscription: int = Field(default=16, ge=1)
    worker_poll_interval_s: float = Field(default=0.2, gt=0)
    # An idle worker waits for a wake-up, or until the first delivery it knows of falls due, but never longer than
    # this between looks (nor, with no Kafka subscription known, between looks for streams); one kept busy by
    # announced work still looks for whatever is due this often: a lost wake-up or one that never came (a lease
    # taken and lost by another worker after the last look) delays work this long at most.
    worker_idle_poll_s: float = Field(default=2.0, gt=0)
    # A Kafka producer batches many records per round trip, so a Kafka subscription may have far more in flight.
    kafka_max_in_flight_per_subscription: int = Field(default=1000, ge=1)
    # Records per batch of a Kafka stream (new events, read from the log); three batches may await their acks.
    kafka_stream_batch_size: int = Field(default=2000, ge=1)
    kafka_message_timeout_s: float = Field(default=10.0, gt=0)
    kafka_connect_timeout_s: float = Field(default=5.0, gt=0)
    # How long librdkafka waits to fill a batch: longer means fewer, larger produce requests (less broker CPU
    # per record) for that much more latency. 5 ms is librdkafka's own default.
    kafka_linger_ms: float = Field(default=5.0, ge=0)
    # zlib level for subscriptions with the gzip codec (the API's default): 1 is the fastest; librdkafka's own
    # default, 6, doubles the producer's CPU per record for output about 15 % smaller.
    kafka_gzip_level: int = Field(default=1, ge=1, le=9)

    # The OCPP tap (docs/ocpp-tap.md): `serve` starts it when both are set; `chargewire ocpp serve` always.
    ocpp_listen: str = Field(default="", description="HOST:PORT where charge points connect to the tap")
    ocpp_upstream: str = Field(default="", description="The CSMS's ws:// or wss:// URL; its path is the tap's too")
    ocpp_tls_cert_file: Path | None = Field(default=None, description="Certificate chain for wss:// charge points")
    ocpp_tls_key_file: Path | None = None
    ocpp_upstream_ca_file: Path | None = Field(default=None, description="CA bundle to verify a wss:// CSMS with")
    ocpp_max_frame_bytes: int = Field(default=1024 * 1024, ge=1024)
    ocpp_open_timeout_s: float = Field(default=10.0, gt=0)
    # Each side's own keep-alive pings (0 turns them off); pings are never relayed.
    ocpp_ping_interval_s: float = Field(default=60.0, ge=0)
    ocpp_missed_heartbeats: int = Field(default=3, ge=1)
    ocpp_long_term_unavailable_s: float = Field(default=3600.0, gt=0)
    # Completed exchanges waiting for the database; beyond this, new ones are dropped and counted.
    ocpp_max_waiting: int = Field(default=100_000, ge=1)
    # Taps sharing a database tell their charge points apart by name (a starting tap marks its own disconnected).
    ocpp_tap_name: str = Field(
        default="", max_length=255, description="This tap's name among those sharing the database; default: host listen"
    )
    # Stopped sessions are kept this long after their start (a repeated stop still finds them), then removed.
    ocpp_stopped_sessions_kept_days: float = Field(default=7.0, gt=0)
    # Deprecated: the registry lives in the database; an older tap's file here is imported once (docs/ocpp-tap.md).
    ocpp_state_file: Path | None = Field(
        default=None, description="Deprecated: an older tap's registry file to import; data_dir/ocpp-tap.db"
    )

    # Retention (docs/retention.md): delivered history (events, deliveries, attempts) and failed deliveries, kept
    # for resend, are removed once older than these; never a pending delivery or an event a stream still needs.
    retention_delivered_days: float = Field(default=30.0, gt=0)
    retention_failed_days: float = Field(default=90.0, gt=0)
    # How often one process (whichever holds the expiry lease) looks for expired rows, and how many rows one
    # of its short transactions removes: small, so publishes never wait long behind it on SQLite.
    retention_interval_s: float = Field(default=300.0, gt=0)
    retention_batch_size: int = Field(default=500, ge=1, le=10_000)

    @model_validator(mode="after")
    def _check_retention(self) -> Settings:
        """Refuse retention periods shorter than what retries, resend and auto-disable rely on."""
        problem = retention_problem(self)
        if problem is not None:
            raise ValueError(problem)
        return self

    @field_validator("delivery_allow_networks", mode="before")
    @classmethod
    def _parse_networks(cls, value: object) -> object:
        return _split_commas(value)

    @field_validator("retry_schedule_s", mode="before")
    @classmethod
    def _parse_schedule(cls, value: object) -> object:
        return _split_commas(value)

    @field_validator("secret_key")
    @classmethod
    def _check_secret_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < MIN_SECRET_KEY_LENGTH:
            raise ValueError(f"must be at least {MIN_SECRET_KEY_LENGTH} characters (try: openssl rand -base64 32)")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Order of precedence: explicit arguments, environment, then the TOML file."""
        toml = TomlConfigSettingsSource(settings_cls, toml_file=_config_file())
        return (init_settings, env_settings, toml)

    @property
    def effective_database_url(self) -> str:
        """The configured URL, or the embedded SQLite file in the data folder."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.data_dir / 'chargewire.db'}"

    @property
    def uses_embedded_database(self) -> bool:
        """True when running on the default SQLite file."""
        return not self.database_url


def retry_span_s(settings: Settings) -> float:
    """The longest a delivery can spend in retries: the whole schedule, every delay at its most jittered."""
    return sum(settings.retry_schedule_s) * (1 + settings.retry_jitter)


def retention_problem(settings: Settings) -> str | None:
    """Why the retention settings cannot work with the others, naming the setting to change; None when they can.

    Delivered history must outlive the retry schedule, so a delivery's attempts are all visible together. A
    subscription is disabled after failing for `disable_after_failing_s`, and resent once it is fixed: its
    failed deliveries from the whole failing stretch (and their retries) must still be there.
    """
    delivered_s = settings.retention_delivered_days * _DAY_S
    failed_s = settings.retention_failed_days * _DAY_S
    needs = {
        "CHARGEWIRE_RETENTION_DELIVERED_DAYS": (delivered_s, retry_span_s(settings), "the retry schedule's span"),
        "CHARGEWIRE_RETENTION_FAILED_DAYS": (
            failed_s,
            max(delivered_s, settings.disable_after_failing_s + retry_span_s(settings)),
            "CHARGEWIRE_RETENTION_DELIVERED_DAYS, and auto-disable's failing period plus the retry schedule's span",
        ),
    }
    for name, (kept_s, minimum_s, reason) in needs.items():
        if kept_s < minimum_s:
            return f"{name} is {kept_s / _DAY_S:g} days; it must be at least {minimum_s / _DAY_S:.2f} days ({reason})"
    return None
