"""retention: the expiry lease and last run; attempts without a foreign key; PostgreSQL's history partitioned

`expiry_runs` is one small table with its one row. The foreign key attempts -> deliveries goes, as the one
deliveries -> events went in 0006: PostgreSQL looked up and locked the delivery row for every attempt written,
and a partition of deliveries cannot be dropped while an attempt in another partition refers to it. On
PostgreSQL, events, deliveries and attempts become partitioned by day, by range of id; their rows so far are
kept, as the historic partition (`store/dialects/postgresql_partitions.py`, docs/retention.md).

What it locks: everything runs in one transaction, so the renamed tables stay locked (ACCESS EXCLUSIVE) to the
end, which the scans that check the old rows against the historic range dominate: about 1.5 s per GB of the
three tables. SQLite rebuilds attempts to drop the key: one copy of that table, every writer waiting.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 19:40:00.000000
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import chargewire.store.tables
from chargewire.store.dialects import postgresql_partitions as partitions

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_DELIVERY_FK = "fk_attempts_delivery_id_deliveries"
# Each partitioned table's secondary indexes, created on the new parent under the names the schema gives them.
_HISTORY_INDEXES = {
    "events": {"ix_events_name_seq": "(name, seq)"},
    "deliveries": {
        "ix_deliveries_event_id": "(event_id)",
        "ix_deliveries_due": "(status, next_attempt_at)",
        "ix_deliveries_log": "(subscription_id, status, created_at)",
    },
    "attempts": {"ix_attempts_delivery_id": "(delivery_id)"},
}
_SUBSCRIPTION_FK = (
    "ALTER TABLE deliveries ADD CONSTRAINT fk_deliveries_subscription_id_subscriptions "
    "FOREIGN KEY (subscription_id) REFERENCES subscriptions (id) ON DELETE CASCADE"
)


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
    if op.get_bind().dialect.name == "postgresql":
        _partition_history_tables()


def _partition_history_tables() -> None:
    """PostgreSQL: events, deliveries and attempts become partitioned by day, their rows the historic partition."""
    today = datetime.now(UTC)
    for table, indexes in _HISTORY_INDEXES.items():
        kind = op.get_bind().execute(
            sa.text("SELECT relkind::text FROM pg_class WHERE oid = to_regclass(:t)"), {"t": table}
        )
        if kind.scalar() == "p":
            continue  # upgraded again after a downgrade, which leaves the tables partitioned
        statements = partitions.conversion(table, indexes, today)
        if table == "deliveries":
            # Before the rows are attached, so the historic partition's own foreign key is taken over, unchecked.
            statements.insert(
                statements.index(f"ALTER TABLE {table}_history VALIDATE CONSTRAINT {table}_history_range"),
                _SUBSCRIPTION_FK,
            )
        for statement in statements:
            op.execute(statement)


def downgrade() -> None:
    """Puts the foreign key back and drops expiry_runs; PostgreSQL's tables stay partitioned (the key works there)."""
    with op.batch_alter_table("attempts") as batch:
        batch.create_foreign_key(_DELIVERY_FK, "deliveries", ["delivery_id"], ["id"], ondelete="CASCADE")
    op.drop_table("expiry_runs")
