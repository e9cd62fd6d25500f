"""Each database's side of the store's dialect differences, chosen once from the database URL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import select
from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.postgresql.base import PGDialect

from chargewire.errors import ConfigurationError
from chargewire.store.bulk_insert import driver_value
from chargewire.store.dialects import dialect_named
from chargewire.store.dialects.postgresql import POSTGRESQL
from chargewire.store.dialects.sqlite import SQLITE
from chargewire.store.tables import deliveries

COMPILERS = {"sqlite": sqlite.dialect(), "postgresql": PGDialect()}


def test_each_backend_name_chooses_its_own_dialect() -> None:
    assert dialect_named("sqlite") is SQLITE
    assert dialect_named("postgresql") is POSTGRESQL


def test_a_database_other_than_sqlite_or_postgresql_is_refused_naming_the_setting() -> None:
    with pytest.raises(ConfigurationError, match="CHARGEWIRE_DATABASE_URL: unsupported database 'mysql'"):
        dialect_named("mysql")


@pytest.mark.parametrize(("name", "bound"), [("sqlite", '["dlv_a","dlv_b"]'), ("postgresql", ["dlv_a", "dlv_b"])])
def test_an_id_list_is_bound_as_one_value_whatever_its_length(name: str, bound: object) -> None:
    dialect = dialect_named(name)
    compiled = select(deliveries.c.id).where(dialect.one_of(deliveries.c.id, ["dlv_a", "dlv_b"]))
    params = compiled.compile(dialect=COMPILERS[name]).params
    assert params == {"ids": bound}


def test_only_postgresql_claims_skip_rows_another_worker_has_locked() -> None:
    due = select(deliveries.c.id)
    locked = str(POSTGRESQL.skip_locked(due, deliveries).compile(dialect=COMPILERS["postgresql"]))
    assert locked.endswith("FOR UPDATE OF deliveries SKIP LOCKED")
    assert SQLITE.skip_locked(due, deliveries) is due


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2026, 12, 7, 8, 48, 39, 768388, tzinfo=UTC),
        datetime(2026, 12, 7, 8, 48, 39, tzinfo=UTC),
        datetime(2026, 1, 1, 1, 30, 0, 5, tzinfo=timezone(timedelta(hours=2))),
        datetime(999, 3, 4, 5, 6, 7, 80, tzinfo=timezone(timedelta(hours=-5, minutes=-30))),
        None,
    ],
)
def test_a_time_bound_straight_to_sqlite_is_the_text_sqlalchemy_stores(moment: datetime | None) -> None:
    processor = deliveries.c.created_at.type.dialect_impl(COMPILERS["sqlite"]).bind_processor(COMPILERS["sqlite"])
    assert processor is not None
    assert driver_value(COMPILERS["sqlite"], deliveries.c.created_at)(moment) == processor(moment)


def test_a_naive_time_is_refused_on_either_database() -> None:
    for dialect in COMPILERS.values():
        with pytest.raises(ValueError, match="naive datetime"):
            driver_value(dialect, deliveries.c.created_at)(datetime(2026, 12, 7))
