"""Kafka streams: events numbered in commit order, and one stream position per Kafka subscription

A Kafka subscription's first attempts are read from the event log past its stream's position instead of
from a delivery row written at publish (docs/decisions/0002-kafka-streamed-delivery.md). Events stored
before this revision keep a NULL seq: their deliveries exist as rows already, and no stream reads them.
Existing Kafka subscriptions start at position 0; a disabled one starts paused.

Downgrading drops the streams: events published since the upgrade and not yet streamed are not delivered.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 22:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import chargewire.store.tables

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("events") as batch_op:
        batch_op.add_column(sa.Column("seq", sa.BigInteger(), nullable=True))
        batch_op.create_index("ix_events_name_seq", ["name", "seq"], unique=False)
    op.create_table(
        "event_sequence",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_sequence")),
    )
    op.create_table(
        "kafka_streams",
        sa.Column("subscription_id", sa.String(length=40), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("lease_owner", sa.String(length=40), nullable=True),
        sa.Column("lease_until", chargewire.store.tables.UtcDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["subscriptions.id"],
            name=op.f("fk_kafka_streams_subscription_id_subscriptions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("subscription_id", name=op.f("pk_kafka_streams")),
    )
    op.create_table(
        "stream_pauses",
        sa.Column("subscription_id", sa.String(length=40), nullable=False),
        sa.Column("from_seq", sa.BigInteger(), nullable=False),
        sa.Column("to_seq", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["subscriptions.id"],
            name=op.f("fk_stream_pauses_subscription_id_subscriptions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("subscription_id", "from_seq", name=op.f("pk_stream_pauses")),
    )
    op.execute("INSERT INTO event_sequence (id, last_seq) VALUES (1, 0)")
    op.execute(
        "INSERT INTO kafka_streams (subscription_id, position) SELECT id, 0 FROM subscriptions WHERE via = 'kafka'"
    )
    op.execute(
        "INSERT INTO stream_pauses (subscription_id, from_seq) "
        "SELECT id, 0 FROM subscriptions WHERE via = 'kafka' AND NOT enabled"
    )


def downgrade() -> None:
    op.drop_table("stream_pauses")
    op.drop_table("kafka_streams")
    op.drop_table("event_sequence")
    with op.batch_alter_table("events") as batch_op:
        batch_op.drop_index("ix_events_name_seq")
        batch_op.drop_column("seq")
