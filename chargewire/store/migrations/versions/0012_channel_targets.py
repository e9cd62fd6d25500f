"""channel targets: a channel-neutral `target` JSON column and `target_secrets_encrypted` blob for subscriptions

The `kafka` column already held the JSON target of every channel without a column of its own, and
`kafka_secrets_encrypted` the SecretBox ciphertext of the JSON document of Kafka's secret half, which the Kafka
channel type dumps and loads unchanged. So existing rows need no rewrite (and no key: the migration never
decrypts): both columns are renamed. Webhook's `callback_url` stays a column of its own.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05 23:50:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_RENAMES = (("kafka", "target"), ("kafka_secrets_encrypted", "target_secrets_encrypted"))


def upgrade() -> None:
    for old, new in _RENAMES:
        op.alter_column("subscriptions", old, new_column_name=new)


def downgrade() -> None:
    for old, new in _RENAMES:
        op.alter_column("subscriptions", new, new_column_name=old)
