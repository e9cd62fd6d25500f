"""backoffice_sessions: back-office sign-ins kept on the server, so signing out ends them everywhere

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 17:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import chargewire.store.tables

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "backoffice_sessions",
        sa.Column("id_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=40), nullable=False),
        sa.Column("created_at", chargewire.store.tables.UtcDateTime(), nullable=False),
        sa.Column("client", sa.String(length=100), nullable=False),
        sa.Column("user_agent", sa.String(length=300), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_backoffice_sessions_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id_hash", name=op.f("pk_backoffice_sessions")),
    )
    op.create_index(op.f("ix_backoffice_sessions_user_id"), "backoffice_sessions", ["user_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_backoffice_sessions_user_id"), table_name="backoffice_sessions")
    op.drop_table("backoffice_sessions")
