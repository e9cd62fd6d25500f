"""ocpp registry: the OCPP tap's charge point, EVSE and session ids in the service's database, shared by its taps

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05 23:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import chargewire.store.tables

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ocpp_charge_points",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("identity", sa.String(length=255), nullable=False),
        sa.Column("version", sa.String(length=20), nullable=True),
        sa.Column("connected", sa.Boolean(), nullable=False),
        sa.Column("tap", sa.String(length=255), nullable=True),
        sa.Column("changed_at", chargewire.store.tables.UtcDateTime(), nullable=False),
        sa.Column("last_message_at", chargewire.store.tables.UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ocpp_charge_points")),
        sa.UniqueConstraint("identity", name=op.f("uq_ocpp_charge_points_identity")),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "ocpp_evses",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("charge_point_id", sa.Integer(), nullable=False),
        sa.Column("connector", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["charge_point_id"],
            ["ocpp_charge_points.id"],
            name=op.f("fk_ocpp_evses_charge_point_id_ocpp_charge_points"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ocpp_evses")),
        sa.UniqueConstraint("charge_point_id", "connector", name=op.f("uq_ocpp_evses_charge_point_id_connector")),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "ocpp_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("charge_point_id", sa.Integer(), nullable=False),
        sa.Column("evse_id", sa.Integer(), nullable=False),
        sa.Column("transaction_key", sa.String(length=100), nullable=False),
        sa.Column("id_tag", sa.String(length=255), nullable=True),
        sa.Column("started_at", sa.String(length=40), nullable=False),
        sa.Column("meter_start", sa.BigInteger(), nullable=False),
        sa.Column("stopped", sa.Boolean(), nullable=False),
        sa.Column("same_as", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["charge_point_id"],
            ["ocpp_charge_points.id"],
            name=op.f("fk_ocpp_sessions_charge_point_id_ocpp_charge_points"),
        ),
        sa.ForeignKeyConstraint(["evse_id"], ["ocpp_evses.id"], name=op.f("fk_ocpp_sessions_evse_id_ocpp_evses")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ocpp_sessions")),
        sa.UniqueConstraint(
            "charge_point_id", "transaction_key", name=op.f("uq_ocpp_sessions_charge_point_id_transaction_key")
        ),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "ocpp_counters",
        sa.Column("charge_point_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("charge_point_id", "name", name=op.f("pk_ocpp_counters")),
    )


def downgrade() -> None:
    op.drop_table("ocpp_counters")
    op.drop_table("ocpp_sessions")
    op.drop_table("ocpp_evses")
    op.drop_table("ocpp_charge_points")
