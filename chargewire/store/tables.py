"""The database schema, as SQLAlchemy Core tables. Alembic migrations mirror it (a test diffs the two)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.types import TypeDecorator

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def naive_utc(value: datetime) -> datetime:
    """An aware datetime as the naive UTC time `UtcDateTime` stores; a naive one is refused."""
    if value.tzinfo is None:
        raise ValueError("naive datetime given; chargewire stores aware UTC datetimes only")
    return value.astimezone(UTC).replace(tzinfo=None)


class UtcDateTime(TypeDecorator[datetime]):
    """Stores aware datetimes as naive UTC on every dialect and gives them back aware."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else naive_utc(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        return value.replace(tzinfo=UTC)  # type: ignore[no-any-return]


api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("token_encrypted", LargeBinary, nullable=False),
    Column("scopes", JSON, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("revoked_at", UtcDateTime),
    Column("last_used_at", UtcDateTime),
)

events = Table(
    "events",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(100), nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("entity_id", String(200)),
    Column("received_at", UtcDateTime, nullable=False),
    # Commit order of published events (test sends have none): Kafka streams read the log past a position.
    Column("seq", BigInteger),
    Index("ix_events_name_seq", "name", "seq"),
    # On PostgreSQL, by day, as ranges of the time-ordered ids (dialects/postgresql_partitions, migration 0009).
    postgresql_partition_by="RANGE (id)",
)

# One row: the last `events.seq` handed out. Ingest takes numbers with an UPDATE of it, whose row lock (on
# PostgreSQL) makes numbering and commit happen in the same order: a committed value N means every event
# numbered up to N is committed too.
event_sequence = Table(
    "event_sequence",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("last_seq", BigInteger, nullable=False),
    # How many times a subscription moved onto or off Kafka: a publish made from subscribers read before such a
    # move must not number after it (`event_log.fence_publishes`, migration 0014).
    Column("channel_moves", BigInteger, nullable=False, server_default="0"),
)

subscriptions = Table(
    "subscriptions",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("api_version", Integer, nullable=False),
    Column("via", String(20), nullable=False),
    Column("notifications", JSON, nullable=False),
    # Webhook's target keeps a column of its own (the v1.0 API's only target); every other channel's target is
    # its JSON document in `target`, and its secret half is sealed in `target_secrets_encrypted` (migration 0012).
    Column("callback_url", String(500)),
    Column("target", JSON),
    Column("target_secrets_encrypted", LargeBinary),
    Column("signing_secrets_encrypted", LargeBinary, nullable=False),
    Column("token_id", String(40), ForeignKey("api_tokens.id"), nullable=False, index=True),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("description", String(1000)),
    Column("filter", JSON),
    Column("retry_schedule", JSON),
    Column("disabled_reason", String(500)),
    Column("failing_since", UtcDateTime),
    Column("last_resend_at", UtcDateTime),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

# One row per (subscription, event name): fan-out finds the subscribers of a batch with one indexed query.
subscription_events = Table(
    "subscription_events",
    metadata,
    Column("event_name", String(100), primary_key=True),
    Column("subscription_id", String(40), ForeignKey("subscriptions.id", ondelete="CASCADE"), primary_key=True),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", String(40), primary_key=True),
    # An event id, not a foreign key: events are never changed or deleted, and the check cost PostgreSQL a
    # lookup and a row lock per delivery row (migration 0006).
    Column("event_id", String(40), nullable=False, index=True),
    Column("subscription_id", String(40), ForeignKey("subscriptions.id", ondelete="CASCADE"), nullable=False),
    Column("event_name", String(100), nullable=False),
    Column("status", String(20), nullable=False),
    Column("attempt_count", Integer, nullable=False, default=0),
    # Set by a resend or a manual retry: the delivery fails for good once attempt_count reaches it.
    Column("attempt_limit", Integer),
    Column("next_attempt_at", UtcDateTime),
    Column("lease_owner", String(40)),
    Column("last_error", String(1000)),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    # The streamed batch whose one attempt delivered it first (`attempt_batches`); no attempts row is written
    # for that attempt. Not a foreign key: written with the batch in one transaction, deleted with it by cascade.
    Column("attempt_batch_id", String(40)),
    Index("ix_deliveries_due", "status", "next_attempt_at", "id"),
    Index("ix_deliveries_log", "subscription_id", "status", "created_at"),
    postgresql_partition_by="RANGE (id)",
)

attempts = Table(
    "attempts",
    metadata,
    Column("id", String(40), primary_key=True),
    # A delivery id, not a foreign key (migration 0009): the check cost PostgreSQL a lookup and a row lock per
    # attempt written, and it would stop a partition of deliveries from being dropped while attempts in another
    # partition refer to it. Expiry removes attempts with their delivery, and those left by a deleted
    # subscription's deliveries once they are past the delivered retention (store/retention.py).
    Column("delivery_id", String(40), nullable=False, index=True),
    Column("number", Integer, nullable=False),
    Column("started_at", UtcDateTime, nullable=False),
    Column("duration_ms", Float, nullable=False),
    Column("outcome", String(20), nullable=False),
    Column("status_code", Integer),
    Column("error_class", String(40)),
    Column("error_message", Text),
    Column("request_headers", JSON, nullable=False),
    Column("response_headers", JSON),
    Column("response_body", Text),
    postgresql_partition_by="RANGE (id)",
)

# One row per streamed Kafka batch that delivered: the first attempt of each of its records (decision 0003).
# Its deliveries are a contiguous id range, [first_delivery_id, last_delivery_id], each marked with the batch.
attempt_batches = Table(
    "attempt_batches",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("subscription_id", String(40), ForeignKey("subscriptions.id", ondelete="CASCADE"), nullable=False),
    Column("started_at", UtcDateTime, nullable=False),
    Column("duration_ms", Float, nullable=False),
    Column("records", Integer, nullable=False),
    Column("first_delivery_id", String(40), nullable=False),
    Column("last_delivery_id", String(40), nullable=False),
    # The request headers every record of the batch carried alike; the others differ per record.
    Column("request_headers", JSON, nullable=False),
    # Delivery id -> that record's response headers (its partition and offset).
    Column("response_headers", JSON, nullable=False),
)

# One per Kafka subscription: how far into the event log its first attempts have gone, and who is streaming it.
kafka_streams = Table(
    "kafka_streams",
    metadata,
    Column("subscription_id", String(40), ForeignKey("subscriptions.id", ondelete="CASCADE"), primary_key=True),
    Column("position", BigInteger, nullable=False),
    Column("lease_owner", String(40)),
    Column("lease_until", UtcDateTime),
)

# Stretches of the log a Kafka subscription skips: (from_seq, to_seq] was published while it was disabled.
# to_seq is NULL while it still is.
stream_pauses = Table(
    "stream_pauses",
    metadata,
    Column("subscription_id", String(40), ForeignKey("subscriptions.id", ondelete="CASCADE"), primary_key=True),
    Column("from_seq", BigInteger, primary_key=True),
    Column("to_seq", BigInteger),
)

# Back-office operators; `email` is stored lower-cased, so the unique constraint ignores case.
users = Table(
    "users",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("email", String(254), nullable=False, unique=True),
    Column("password_hash", String(200), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("last_login_at", UtcDateTime),
)

# One row per worker process (`serve`'s in-process worker too), rewritten every couple of seconds while it runs.
worker_heartbeats = Table(
    "worker_heartbeats",
    metadata,
    Column("worker_id", String(40), primary_key=True),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", UtcDateTime, nullable=False),
    Column("heartbeat_at", UtcDateTime, nullable=False),
    Column("stopped_at", UtcDateTime, nullable=True),
    Column("tasks", JSON, nullable=False),  # {loop name: state}
    Column("last_error", Text, nullable=True),
    Column("last_error_at", UtcDateTime, nullable=True),
)

# A signed-in back-office session: only the hash of its id is kept, so reading this table signs no one in.
backoffice_sessions = Table(
    "backoffice_sessions",
    metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("user_id", String(40), ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("client", String(100), nullable=False),
    Column("user_agent", String(300), nullable=False),
)

# One row (id 1): which process holds the expiry lease (only one expires at a time, docs/retention.md), and what
# the last expiry run did: when, the rows it removed per table, its error, and the tables' sizes it measured.
expiry_runs = Table(
    "expiry_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("lease_owner", String(40)),
    Column("lease_until", UtcDateTime),
    Column("started_at", UtcDateTime),
    Column("finished_at", UtcDateTime),
    Column("removed", JSON),  # {table: rows}
    Column("error", Text),
    Column("tables", JSON),  # [{table, partition, bytes, rows, oldest}]
)

# A publish's `Idempotency-Key`, stored in the transaction of its events: a repeat of the key by the same token
# answers these event ids instead of publishing again. Kept at least `idempotency_retention_s`, then swept.
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("token_id", String(40), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("request_hash", String(64), nullable=False),  # SHA-256 of the published payloads, in hex
    Column("event_ids", JSON, nullable=False),
    Column("created_at", UtcDateTime, nullable=False, index=True),
)

# The OCPP tap's identity registry (sources/ocpp/registry.py, written by store/ocpp_registry_store.py): the integer
# ids the catalog's payloads carry for OCPP's string identities, connectors and transactions. Ids are never reused
# (AUTOINCREMENT on SQLite), so an id a subscriber saw always means the same charge point, EVSE or session.
ocpp_charge_points = Table(
    "ocpp_charge_points",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("identity", String(255), nullable=False, unique=True),
    Column("version", String(20)),
    Column("connected", Boolean, nullable=False),
    # The tap that holds (or last held) the connection: a tap that starts marks only its own disconnected.
    Column("tap", String(255)),
    Column("changed_at", UtcDateTime, nullable=False),
    Column("last_message_at", UtcDateTime),
    sqlite_autoincrement=True,
)

# One row per (charge point, 1.6 connector or 2.0.1 EVSE).
ocpp_evses = Table(
    "ocpp_evses",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("charge_point_id", Integer, ForeignKey("ocpp_charge_points.id"), nullable=False),
    Column("connector", Integer, nullable=False),
    UniqueConstraint("charge_point_id", "connector"),
    sqlite_autoincrement=True,
)

# One row per transaction id a charge point used; `same_as` names the session a repeated start (a new transaction
# id for the same start) belongs to. `started_at` is the charge point's own time as published, kept as that text.
ocpp_sessions = Table(
    "ocpp_sessions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("charge_point_id", Integer, ForeignKey("ocpp_charge_points.id"), nullable=False),
    Column("evse_id", Integer, ForeignKey("ocpp_evses.id"), nullable=False),
    Column("transaction_key", String(100), nullable=False),
    Column("id_tag", String(255)),
    Column("started_at", String(40), nullable=False),
    Column("meter_start", BigInteger, nullable=False),
    Column("stopped", Boolean, nullable=False),
    Column("same_as", Integer),
    UniqueConstraint("charge_point_id", "transaction_key"),
    sqlite_autoincrement=True,
)

# Per-charge-point sequences (`authorization`, `diagnostics`); charge point 0 holds the tap-wide ones.
ocpp_counters = Table(
    "ocpp_counters",
    metadata,
    Column("charge_point_id", Integer, primary_key=True, autoincrement=False),
    Column("name", String(40), primary_key=True),
    Column("value", BigInteger, nullable=False),
)
