"""deliveries: the due index `ix_deliveries_due` ends with the id, so that it gives the claim's whole due order

A claim reads due deliveries in (next_attempt_at, id) order, ties in publish order. With the index on
(status, next_attempt_at) alone, every group of rows due at the same time was sorted before the first of them
could be taken: with a million pending, published 1,000 to a batch, each claim of 64 rows read and sorted
1,000 on PostgreSQL (an Incremental Sort over the day partitions' Merge Append) and on SQLite (a temporary
B-tree for the right part of the ORDER BY). With the id in the index, each partition's index scan is already
in claim order: PostgreSQL merges them and stops at the limit, SQLite reads the index and stops. (Before
autovacuum's first ANALYZE of a freshly filled partition, PostgreSQL estimates ~100 due rows and sorts them
all, with either index: 80 MB on disk with a million pending. Statistics end that, within a minute.)

The index keeps its name and replaces the old one, so every insert still maintains one due index. On
PostgreSQL, building it locks deliveries against writes for the length of one pass over the pending and
delivered rows of every partition.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06 02:10:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

_NAME = "ix_deliveries_due"


def upgrade() -> None:
    op.drop_index(_NAME, table_name="deliveries")
    op.create_index(_NAME, "deliveries", ["status", "next_attempt_at", "id"], unique=False)


def downgrade() -> None:
    op.drop_index(_NAME, table_name="deliveries")
    op.create_index(_NAME, "deliveries", ["status", "next_attempt_at"], unique=False)
