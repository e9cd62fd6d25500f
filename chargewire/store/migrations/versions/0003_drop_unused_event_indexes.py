"""events: drop the indexes on name and received_at, which no query reads

Every ingested event paid to maintain them (two index entries per 1 KB event, and their pages in the WAL),
and nothing looks events up by name or time: the event log is read by id.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 21:10:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("events") as batch_op:
        batch_op.drop_index(batch_op.f("ix_events_received_at"))
        batch_op.drop_index(batch_op.f("ix_events_name"))


def downgrade() -> None:
    with op.batch_alter_table("events") as batch_op:
        batch_op.create_index(batch_op.f("ix_events_name"), ["name"], unique=False)
        batch_op.create_index(batch_op.f("ix_events_received_at"), ["received_at"], unique=False)
