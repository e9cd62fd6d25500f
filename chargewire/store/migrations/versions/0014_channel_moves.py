"""event_sequence: `channel_moves` counts the subscriptions moved onto or off Kafka (decision 0011)

A subscription's move between a webhook and Kafka updates the sequence's row, so that a publish made in one
statement from subscribers read before the move, and waiting for the row meanwhile, finds the count changed and
writes nothing; it is made again from the subscribers as they are then.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06 14:50:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("event_sequence") as batch_op:
        batch_op.add_column(sa.Column("channel_moves", sa.BigInteger(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("event_sequence") as batch_op:
        batch_op.drop_column("channel_moves")
