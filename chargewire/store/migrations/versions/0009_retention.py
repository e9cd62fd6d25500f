"""retention: the expiry lease and the last expiry run (docs/retention.md)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 19:40:00.000000

Creates one small table and its one row: it takes no lock on any existing table.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import chargewire.store.tables

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    expiry_runs = op.create_table(
        "expiry_runs",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("lease_owner", sa.String(length=40), nullable=True),
        sa.Column("lease_until", chargewire.store.tables.UtcDateTime(), nullable=True),
        sa.Column("started_at", chargewire.store.tables.UtcDateTime(), nullable=True),
        sa.Column("finished_at", chargewire.store.tables.UtcDateTime(), nullable=True),
        sa.Column("removed", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("tables", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_expiry_runs")),
    )
    op.bulk_insert(expiry_runs, [{"id": 1}])


def downgrade() -> None:
    op.drop_table("expiry_runs")
