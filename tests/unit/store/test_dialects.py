"""Each database's side of the store's dialect differences, chosen once from the database URL."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.postgresql.base import PGDialect

from chargewire.errors import ConfigurationError
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
