"""Attempt batches: a streamed Kafka batch that delivered logs one attempt row for all its records

Until now every record a Kafka stream delivered wrote an attempts row of its own, with all its headers: that
row cost the worker more than anything else it does per record (docs/decisions/0003-batched-attempt-log.md).
A delivered batch now writes one `attempt_batches` row; its deliveries point at it by `attempt_batch_id`.

Downgrading turns each batch back into one attempts row per delivery, with the headers the batch kept.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25 01:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import chargewire.store.tables

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "attempt_batches",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("subscription_id", sa.String(length=40), nullable=False),
        sa.Column("started_at", chargewire.store.tables.UtcDateTime(), nullable=False),
        sa.Column("duration_ms", sa.Float(), nullable=False),
        sa.Column("records", sa.Integer(), nullable=False),
        sa.Column("first_delivery_id", sa.String(length=40), nullable=False),
        sa.Column("last_delivery_id", sa.String(length=40), nullable=False),
        sa.Column("request_headers", sa.JSON(), nullable=False),
        sa.Column("response_headers", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["subscriptions.id"],
            name=op.f("fk_attempt_batches_subscription_id_subscriptions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attempt_batches")),
    )
    # A plain ADD COLUMN (no batch mode): SQLite then leaves the table in place, however many rows it holds.
    op.add_column("deliveries", sa.Column("attempt_batch_id", sa.String(length=40), nullable=True))


def downgrade() -> None:
    # One attempts row per batched delivery: its id is the delivery's with the attempt prefix.
    op.execute(
        "INSERT INTO attempts (id, delivery_id, number, started_at, duration_ms, outcome, request_headers) "
        "SELECT 'att_' || substr(d.id, 5), d.id, 1, b.started_at, b.duration_ms, 'delivered', b.request_headers "
        "FROM deliveries d JOIN attempt_batches b ON b.id = d.attempt_batch_id"
    )
    # A plain DROP COLUMN (SQLite 3.35+): batch mode would rebuild the table, and dropping the old one would
    # cascade to every attempt row.
    op.drop_column("deliveries", "attempt_batch_id")
    op.drop_table("attempt_batches")
