"""Statements for SQLite's one trip: compiled once, bound anew each time, values converted by their column types."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import bindparam, update
from sqlalchemy.dialects import sqlite

from chargewire.store.dialects.sqlite_one_trip import driver_statement
from chargewire.store.tables import kafka_streams, subscriptions

DIALECT = sqlite.dialect()
MOVE = (
    update(kafka_streams)
    .where(kafka_streams.c.subscription_id == bindparam("stream"))
    .values(position=bindparam("end"), lease_until=bindparam("until", type_=kafka_streams.c.lease_until.type))
)


def test_a_statement_built_once_binds_the_parameters_of_each_call() -> None:
    first = driver_statement(MOVE, DIALECT, {"stream": "sub_a", "end": 10, "until": None})
    second = driver_statement(MOVE, DIALECT, {"stream": "sub_b", "end": 20, "until": None}, must_change_rows=True)

    assert (
        first.sql
        == second.sql
        == "UPDATE kafka_streams SET position=?, lease_until=? WHERE kafka_streams.subscription_id = ?"
    )
    assert first.parameters == (10, None, "sub_a")
    assert second.parameters == (20, None, "sub_b")
    assert (first.must_change_rows, second.must_change_rows) == (False, True)


def test_values_are_converted_by_their_column_types() -> None:
    until = datetime(2026, 11, 25, 7, 0, 0, 123456, tzinfo=UTC)

    statement = driver_statement(MOVE, DIALECT, {"stream": "sub_a", "end": 1, "until": until})

    assert statement.parameters == (1, "2026-11-25 07:00:00.123456", "sub_a")  # stored as naive UTC text


def test_an_expanding_in_is_refused() -> None:
    listed = update(subscriptions).where(subscriptions.c.id.in_(["sub_a", "sub_b"])).values(enabled=False)

    with pytest.raises(ValueError, match="expanding IN"):
        driver_statement(listed, DIALECT)
