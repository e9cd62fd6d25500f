"""Worker heartbeats: each worker process's liveness, loop states and last error, for /readyz and the overview

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05 17:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import chargewire.store.tables

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "worker_heartbeats",
        sa.Column("worker_id", sa.String(length=40), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", chargewire.store.tables.UtcDateTime(), nullable=False),
        sa.Column("heartbeat_at", chargewire.store.tables.UtcDateTime(), nullable=False),
        sa.Column("stopped_at", chargewire.store.tables.UtcDateTime(), nullable=True),
        sa.Column("tasks", sa.JSON(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_error_at", chargewire.store.tables.UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("worker_id", name=op.f("pk_worker_heartbeats")),
    )


def downgrade() -> None:
    op.drop_table("worker_heartbeats")
