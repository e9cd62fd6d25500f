"""retention: the expiry lease and the last expiry run; attempts without the database check of their delivery

`expiry_runs` is one small table with its one row. The foreign key attempts -> deliveries goes, as the one
deliveries -> events went in 0006: PostgreSQL looked up and locked the delivery row for every attempt written,
and a partition of deliveries cannot be dropped while an attempt in another partition refers to it
(docs/retention.md). Expiry removes attempts itself.

What it locks: PostgreSQL drops the constraint under an ACCESS EXCLUSIVE lock on attempts and deliveries held
for milliseconds (no scan). SQLite drops a constraint by rebuilding the table: attempts is copied once while the
migration holds the write lock, about as long as copying that table (docs/retention.md).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 19:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import chargewire.store.tables

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_DELIVERY_FK = "fk_attempts_delivery_id_deliveries"


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
    with op.batch_alter_table("attempts") as batch:
        batch.drop_constraint(_DELIVERY_FK, type_="foreignkey")


def downgrade() -> None:
    with op.batch_alter_table("attempts") as batch:
        batch.create_foreign_key(_DELIVERY_FK, "deliveries", ["delivery_id"], ["id"], ondelete="CASCADE")
    op.drop_table("expiry_runs")
