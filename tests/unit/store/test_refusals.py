"""Telling refused rows from an unreachable database, and writing around the refused ones (pure logic)."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg
import pytest
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, OperationalError

from chargewire.store.refusals import refused, write_apart


@pytest.mark.parametrize(
    "error",
    [
        DataError("INSERT", None, Exception("value too long")),
        IntegrityError("INSERT", None, Exception("foreign key")),
        DBAPIError("COPY attempts", None, asyncpg.CharacterNotInRepertoireError("invalid byte sequence")),
        UnicodeEncodeError("utf-8", "\udcff", 0, 1, "surrogates not allowed"),
        TypeError("str is not valid UTF-8: surrogates not allowed"),
    ],
)
def test_values_the_database_or_its_driver_cannot_take_are_refusals(error: Exception) -> None:
    assert refused(error)


@pytest.mark.parametrize(
    "error",
    [
        OperationalError("INSERT", None, Exception("database is locked")),
        DBAPIError("COPY attempts", None, asyncpg.ConnectionDoesNotExistError("connection was closed")),
        OSError(28, "No space left on device"),
        ConnectionResetError(),
    ],
)
def test_an_unreachable_locked_or_full_database_is_not_a_refusal(error: Exception) -> None:
    assert not refused(error)


class _Table:
    """Takes writes unless they hold a refused item; remembers what it took."""

    def __init__(self, refuse: set[str], error: Exception) -> None:
        self.rows: list[str] = []
        self.writes = 0
        self._refuse = refuse
        self._error = error

    async def write(self, items: Sequence[str]) -> None:
        self.writes += 1
        if self._refuse & set(items):
            raise self._error
        self.rows.extend(items)


async def test_write_apart_writes_every_item_but_the_refused_one_which_gets_its_fallback_form() -> None:
    table = _Table({"c"}, DataError("INSERT", None, Exception("NUL")))
    await write_apart(list("abcdefgh"), table.write, [str.upper], repr)
    assert sorted(table.rows) == ["C", "a", "b", "d", "e", "f", "g", "h"]


async def test_write_apart_gives_up_an_item_no_form_gets_in_and_writes_the_rest() -> None:
    table = _Table({"c", "C"}, IntegrityError("INSERT", None, Exception("gone")))
    await write_apart(list("abcd"), table.write, [str.upper], repr)
    assert sorted(table.rows) == ["a", "b", "d"]


async def test_write_apart_raises_an_unreachable_database_unchanged_after_one_try() -> None:
    locked = OperationalError("INSERT", None, Exception("database is locked"))
    table = _Table({"a", "b"}, locked)
    with pytest.raises(OperationalError) as raised:
        await write_apart(["a", "b"], table.write, [str.upper], repr)
    assert raised.value is locked
    assert table.writes == 1
