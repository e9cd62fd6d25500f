"""Deliveries no longer have the database check that their event exists

Events are never updated or deleted, and every delivery row is written for an event that exists: at publish,
in the transaction that stores it, or by a stream that read it from the log. On PostgreSQL the check was still
a lookup and a row lock on the event for every delivery row written, 5 µs of the server's CPU per row of
the 14 a streamed delivery row cost (docs/decisions/0004-deliveries-without-event-foreign-key.md).

SQLite drops a constraint by rebuilding the table, and dropping the old table would cascade to every attempt
row while foreign keys are enforced, as they are inside this transaction: the attempts are kept aside and put
back.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25 07:00:00.000000
"""

from __future__ import annotations

from collections.abc import Callable

from alembic import op
from alembic.operations import BatchOperations

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_EVENT_FK = "fk_deliveries_event_id_events"


def upgrade() -> None:
    _change_deliveries(lambda batch: batch.drop_constraint(_EVENT_FK, type_="foreignkey"))


def downgrade() -> None:
    _change_deliveries(lambda batch: batch.create_foreign_key(_EVENT_FK, "events", ["event_id"], ["id"]))


def _change_deliveries(change: Callable[[BatchOperations], None]) -> None:
    """Apply `change` to the deliveries table; on SQLite, keep its attempts through the rebuild."""
    rebuilds = op.get_bind().dialect.name == "sqlite"
    if rebuilds:
        op.execute("CREATE TEMPORARY TABLE attempts_kept AS SELECT * FROM attempts")
    with op.batch_alter_table("deliveries") as batch:
        change(batch)
    if rebuilds:
        op.execute("INSERT INTO attempts SELECT * FROM attempts_kept")
        op.execute("DROP TABLE attempts_kept")
