"""The OCPP tap's identity registry in the service's database: the one module that writes its `ocpp_*` tables.

Several taps may share the database (taps in front of different charge points, a tap moved to another host), so
every id is handed out by a unique constraint rather than by a reader that checked first: the insert that loses a
race (on PostgreSQL after waiting for the winner's commit) updates nothing that matters and returns the winner's
id, or, for a transaction already recorded, does nothing. The registry's writes of a batch (connects, new EVSEs,
session starts and stops, numbers taken) go in one transaction of a few multi-row statements (`write`): one
transaction each queued ~3,000 of them behind the publishes in bench-ocpp's paced run, and the observations behind
those (9,700) added 136 ms to the p99 of the frames forwarded meanwhile.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BindParameter,
    Integer,
    Table,
    Update,
    bindparam,
    column,
    delete,
    false,
    insert,
    select,
    true,
    update,
    values,
)
from sqlalchemy.sql.expression import UpdateBase

from chargewire.errors import ValidationFailed
from chargewire.store.database import Database
from chargewire.store.dialects import StoreDialect
from chargewire.store.dialects.writes import Statement
from chargewire.store.ocpp_registry_reads import OcppRegistryReads
from chargewire.store.ocpp_registry_records import (
    ChargePointRecord,
    RegistryIds,
    RegistryWrites,
    SessionStart,
    StartedSession,
    StartRecorded,
)
from chargewire.store.tables import UtcDateTime, ocpp_charge_points, ocpp_counters, ocpp_evses, ocpp_sessions

_points, _evses, _sessions, _counters = ocpp_charge_points, ocpp_evses, ocpp_sessions, ocpp_counters
# The tables in the order their rows may be written (each refers only to those before it).
REGISTRY_TABLES: tuple[Table, ...] = (_points, _evses, _sessions, _counters)
_GENERATED_IDS = (_points, _evses, _sessions)
_TAP_LENGTH = 255
# Last-message times written per UPDATE statement. One statement for many rows: as an executemany, SQLite's driver
# thread waited for the GIL after every row (up to 5 ms while the event loop forwarded frames), so the flush of
# 1,000 charge points held the one write lock, and every publish behind it, for up to 150 ms (bench-ocpp, paced).
_LAST_MESSAGES_PER_STATEMENT = 256
# The most rows a batched statement writes; a batch of more is several statements, in the same transaction.
_ROWS_PER_STATEMENT = 64
# Stopped sessions removed per transaction when they expire.
_EXPIRED_PER_TRANSACTION = 1000

__all__ = [
    "REGISTRY_TABLES",
    "ChargePointRecord",
    "OcppRegistryStore",
    "RegistryIds",
    "RegistryWrites",
    "SessionStart",
    "StartRecorded",
    "StartedSession",
    "check_identity",
]


class OcppRegistryStore(OcppRegistryReads):
    """Reads (`OcppRegistryReads`) and writes the `ocpp_charge_points`, `ocpp_evses`, `ocpp_sessions` and
    `ocpp_counters` tables."""

    def __init__(self, database: Database) -> None:
        super().__init__(database)
        dialect = database.dialect
        self._statements: dict[tuple[str, int], UpdateBase] = {}
        self._builders: dict[str, Callable[[int], UpdateBase]] = {
            "connects": functools.partial(_connects, dialect),
            "evses": functools.partial(_evses_wanted, dialect),
            "starts": functools.partial(_starts, dialect),
            "numbers": functools.partial(_numbers, dialect),
        }

    async def record_connected(self, identity: str, version: str | None, tap: str, at: datetime) -> int:
        """Record that `identity` connected to `tap` speaking `version`; returns its charge point id (new or kept).

        ValidationFailed, before any write, for an identity or version longer than its column (`check_identity`).
        """
        check_identity(identity, version)
        ids = await self.write(RegistryWrites(connects={identity: (version, at)}), tap)
        return ids.charge_points[identity]

    async def write(self, writes: RegistryWrites, tap: str) -> RegistryIds:
        """Make `writes` for `tap` in one transaction (on SQLite, one trip to the driver's thread), multi-row
        statements per kind of write, and return the ids they gave.

        Connects and EVSEs are upserts that return the kept row's id; a start's look for an open session it
        repeats is a subquery of its own row, so every statement's values are known before the transaction. Rows
        go in key order, the kinds always in the same order: taps writing the same rows at once on PostgreSQL then
        lock them in the same order, and wait for each other instead of deadlocking.
        """
        tap = tap[:_TAP_LENGTH]
        connects = [(identity, version, at, tap) for identity, (version, at) in sorted(writes.connects.items())]
        statements = [
            *self._chunked("connects", connects),
            *_padded("disconnects", sorted(writes.disconnects), {"of_tap": tap, "at": writes.disconnected_at}),
            *self._chunked("evses", sorted(writes.evses)),
            *self._chunked("starts", [start for _, start in sorted(writes.starts.items())]),
            *_padded("stops", sorted(writes.stops), {}),
            *self._chunked("numbers", [(*key, count) for key, count in sorted(writes.numbers.items())]),
        ]
        if not statements:
            return RegistryIds()
        async with self._database.transaction() as connection:
            returned = await self._database.dialect.write_returning(connection, [write for _, write in statements])
        ids = RegistryIds()
        repeating: list[tuple[Any, ...]] = []
        for (kind, _), rows in zip(statements, returned, strict=True):
            for row in rows:
                _collect(ids, kind, row, repeating)
        await self._name_repeats(ids, repeating)
        return ids

    def _chunked(self, kind: str, rows: Sequence[Any]) -> list[tuple[str, Statement]]:
        """The statements that write `rows` of `kind`, a power of two of them each, so that at most seven
        statements per kind are ever built (each once, and compiled once)."""
        statements = []
        start = 0
        while start < len(rows):
            count = min(_ROWS_PER_STATEMENT, 1 << ((len(rows) - start).bit_length() - 1))
            statement = self._statements.get((kind, count))
            if statement is None:
                statement = self._statements[(kind, count)] = self._builders[kind](count)
            parameters = {
                f"{name}_{row}": value
                for row, values in enumerate(rows[start : start + count])
                for name, value in zip(_ROW_COLUMNS[kind], _row_values(values), strict=True)
            }
            statements.append((kind, Statement(statement, parameters)))
            start += count
        return statements

    async def _name_repeats(self, ids: RegistryIds, repeating: list[tuple[Any, ...]]) -> None:
        """Note which open session each start that repeated one repeats, by its transaction id."""
        if not repeating:
            return
        originals = select(_sessions.c.id, _sessions.c.transaction_key).where(
            _sessions.c.id.in_([row[3] for row in repeating])
        )
        async with self._database.reading() as connection:
            keys = {row.id: row.transaction_key for row in await connection.execute(originals)}
        for _, charge_point_id, transaction_key, same_as in repeating:
            ids.starts[(charge_point_id, transaction_key)] = StartRecorded(repeats=keys[same_as])

    async def disconnect_tap(self, tap: str) -> None:
        """Mark every charge point connected to `tap` disconnected: a tap that starts holds no connections yet."""
        statement = update(_points).where(_points.c.tap == tap, _points.c.connected == true()).values(connected=False)
        async with self._database.transaction() as connection:
            await connection.execute(statement)

    async def record_last_messages(self, moments: Mapping[int, datetime]) -> None:
        """Write when each charge point in `moments` was last heard from, a few hundred rows per statement."""
        rows = sorted(moments.items())
        writes = [
            Statement(_RECORD_LAST_MESSAGES, _last_messages(rows[start : start + _LAST_MESSAGES_PER_STATEMENT]))
            for start in range(0, len(rows), _LAST_MESSAGES_PER_STATEMENT)
        ]
        await self._database.dialect.commit_writes(self._database, writes)

    async def expire_stopped_sessions(self, started_before: str) -> int:
        """Remove the stopped sessions that started before `started_before` (RFC 3339 UTC, as the starts are kept),
        with the other transaction ids they had (`same_as`); returns how many rows went. Open sessions stay.

        The rows are found in a read (no column of the look is indexed, and on SQLite a scan under the write lock
        would hold up every publish) and removed by id, `_EXPIRED_PER_TRANSACTION` sessions at a time, oldest
        first. Nothing can name an expired session meanwhile: another name is only given to an open one.
        """
        removed = 0
        while True:
            expired = await self._expired_ids(started_before)
            if expired:
                async with self._database.transaction() as connection:
                    removed += (await connection.execute(delete(_sessions).where(_sessions.c.id.in_(expired)))).rowcount
            if len(expired) < _EXPIRED_PER_TRANSACTION:
                return removed

    async def _expired_ids(self, started_before: str) -> list[int]:
        """The ids of the oldest stopped sessions started before `started_before`, with their other names' rows."""
        stopped = (
            select(_sessions.c.id)
            .where(
                _sessions.c.stopped == true(), _sessions.c.same_as.is_(None), _sessions.c.started_at < started_before
            )
            .order_by(_sessions.c.id)
            .limit(_EXPIRED_PER_TRANSACTION)
        )
        async with self._database.reading() as connection:
            originals = list((await connection.execute(stopped)).scalars())
            if not originals:
                return []
            names = select(_sessions.c.id).where(_sessions.c.same_as.in_(originals))
            return originals + list((await connection.execute(names)).scalars())

    async def insert_imported(self, rows: Mapping[Table, Sequence[Mapping[str, Any]]]) -> None:
        """Insert an older tap's registry as it was, ids included, in one transaction (`sources.ocpp.legacy_state`)."""
        async with self._database.transaction() as connection:
            for table in REGISTRY_TABLES:
                if rows.get(table):
                    await connection.execute(insert(table), list(rows[table]))
            for table in _GENERATED_IDS:
                await self._database.dialect.continue_ids(connection, table)


# The columns each row of a batched statement binds, as `_row_values` gives them.
_ROW_COLUMNS: dict[str, tuple[str, ...]] = {
    "connects": ("identity", "version", "changed_at", "tap"),
    "evses": ("charge_point_id", "connector"),
    "starts": ("charge_point_id", "evse_id", "transaction_key", "id_tag", "started_at", "meter_start"),
    "numbers": ("charge_point_id", "name", "value"),
}


def _row_values(values: tuple[Any, ...] | SessionStart) -> tuple[Any, ...]:
    if isinstance(values, SessionStart):
        return (
            values.charge_point_id,
            values.evse_id,
            values.transaction_key,
            values.id_tag,
            values.started_at,
            values.meter_start,
        )
    return values


def _row(table: Table, kind: str, row: int) -> dict[str, BindParameter[Any]]:
    """Row `row`'s bound values of a batched INSERT into `table`, named `<column>_<row>`."""
    return {name: bindparam(f"{name}_{row}", type_=table.c[name].type) for name in _ROW_COLUMNS[kind]}


def _connects(dialect: StoreDialect, rows: int) -> UpdateBase:
    """Upsert `rows` charge points as connected to a tap, returning (id, identity) of each."""
    values = []
    for row in range(rows):
        bound = _row(_points, "connects", row)
        values.append({**bound, "connected": true(), "last_message_at": bound["changed_at"]})
    return (
        dialect.insert_on_conflict(
            _points,
            ["identity"],
            lambda proposed: {
                "version": proposed.version,
                "connected": proposed.connected,
                "tap": proposed.tap,
                "changed_at": proposed.changed_at,
                "last_message_at": proposed.last_message_at,
            },
        )
        .values(values)
        .returning(_points.c.id, _points.c.identity)
    )


def _evses_wanted(dialect: StoreDialect, rows: int) -> UpdateBase:
    """Hand out ids to `rows` (charge point, connector) pairs, returning (id, charge point, connector) of each,
    new or kept: the conflict's update changes nothing, but makes RETURNING give the kept row."""
    values = [_row(_evses, "evses", row) for row in range(rows)]
    keys = ["charge_point_id", "connector"]
    return (
        dialect.insert_on_conflict(_evses, keys, lambda proposed: {"connector": proposed.connector})
        .values(values)
        .returning(_evses.c.id, _evses.c.charge_point_id, _evses.c.connector)
    )


def _starts(dialect: StoreDialect, rows: int) -> UpdateBase:
    """Record `rows` transactions' starts, each with the open session it repeats (`same_as`, a subquery of its
    row); returns (id, charge point, transaction id, same_as) of those new (a known transaction id is left)."""
    values = []
    for row in range(rows):
        bound = _row(_sessions, "starts", row)
        same_start = (
            select(_sessions.c.id)
            .where(
                _sessions.c.charge_point_id == bound["charge_point_id"],
                _sessions.c.evse_id == bound["evse_id"],
                _sessions.c.started_at == bound["started_at"],
                _sessions.c.meter_start == bound["meter_start"],
                _sessions.c.stopped == false(),
                _sessions.c.same_as.is_(None),
            )
            .order_by(_sessions.c.id)
            .limit(1)
            .scalar_subquery()
        )
        values.append({**bound, "stopped": false(), "same_as": same_start})
    return (
        dialect.insert_on_conflict(_sessions, ["charge_point_id", "transaction_key"])
        .values(values)
        .returning(_sessions.c.id, _sessions.c.charge_point_id, _sessions.c.transaction_key, _sessions.c.same_as)
    )


def _numbers(dialect: StoreDialect, rows: int) -> UpdateBase:
    """Take `value` numbers from each of `rows` per-charge-point sequences, returning (charge point, name, last)."""
    values = [_row(_counters, "numbers", row) for row in range(rows)]
    return (
        dialect.insert_on_conflict(
            _counters, ["charge_point_id", "name"], lambda proposed: {"value": _counters.c.value + proposed.value}
        )
        .values(values)
        .returning(_counters.c.charge_point_id, _counters.c.name, _counters.c.value)
    )


def _ids_bound() -> list[BindParameter[int]]:
    return [bindparam(f"id_{row}", type_=Integer) for row in range(_ROWS_PER_STATEMENT)]


# Built once each and padded: an id named twice in IN is the same row.
_PADDED: dict[str, UpdateBase] = {
    "disconnects": update(_points)
    .where(_points.c.tap == bindparam("of_tap"), _points.c.id.in_(_ids_bound()))
    .values(connected=False, changed_at=bindparam("at"), last_message_at=bindparam("at")),
    "stops": update(_sessions)
    .where(_sessions.c.stopped == false(), _sessions.c.id.in_(_ids_bound()))
    .values(stopped=True)
    .returning(_sessions.c.id),
}


def _padded(kind: str, ids: Sequence[int], shared: Mapping[str, Any]) -> list[tuple[str, Statement]]:
    """`_PADDED[kind]` for `ids`, `_ROWS_PER_STATEMENT` of them per statement, the last repeated to fill it."""
    statements = []
    for start in range(0, len(ids), _ROWS_PER_STATEMENT):
        chunk = ids[start : start + _ROWS_PER_STATEMENT]
        padded = [*chunk, *[chunk[-1]] * (_ROWS_PER_STATEMENT - len(chunk))]
        parameters = {**shared, **{f"id_{row}": value for row, value in enumerate(padded)}}
        statements.append((kind, Statement(_PADDED[kind], parameters)))
    return statements


def _collect(ids: RegistryIds, kind: str, row: tuple[Any, ...], repeating: list[tuple[Any, ...]]) -> None:
    """Note what a returned row of a `kind` statement gave; a start that repeats a session goes to `repeating`."""
    if kind == "connects":
        ids.charge_points[row[1]] = int(row[0])
    elif kind == "evses":
        ids.evses[(int(row[1]), int(row[2]))] = int(row[0])
    elif kind == "starts" and row[3] is not None:
        repeating.append(row)
    elif kind == "starts":
        ids.starts[(int(row[1]), row[2])] = StartRecorded(session_id=int(row[0]))
    elif kind == "stops":
        ids.stopped.add(int(row[0]))
    elif kind == "numbers":
        ids.numbers[(int(row[0]), row[1])] = int(row[2])


def _record_last_messages() -> Update:
    """The UPDATE that sets `_LAST_MESSAGES_PER_STATEMENT` charge points' last-message times (`_last_messages`)."""
    rows = [
        (bindparam(f"point_{row}", type_=Integer), bindparam(f"moment_{row}", type_=UtcDateTime))
        for row in range(_LAST_MESSAGES_PER_STATEMENT)
    ]
    noted = values(column("point", Integer), column("moment", UtcDateTime), name="noted").data(rows).cte()
    return update(_points).where(_points.c.id == noted.c.point).values(last_message_at=noted.c.moment)


# Built once: a VALUES list is never in SQLAlchemy's statement cache, but SQLite's one trip keeps its compiled form.
_RECORD_LAST_MESSAGES = _record_last_messages()


def _last_messages(rows: Sequence[tuple[int, datetime]]) -> dict[str, Any]:
    """`_RECORD_LAST_MESSAGES`'s parameters for up to its number of rows, padded by repeating the last one (a row
    set twice to the same time is unchanged)."""
    padded = [*rows, *[rows[-1]] * (_LAST_MESSAGES_PER_STATEMENT - len(rows))]
    parameters: dict[str, Any] = {}
    for row, (point, moment) in enumerate(padded):
        parameters[f"point_{row}"] = point
        parameters[f"moment_{row}"] = moment
    return parameters


def check_identity(identity: str, version: str | None) -> None:
    """ValidationFailed for an identity or version longer than its column: a charge point names both (its URL's
    path, the subprotocol), and SQLite would store what PostgreSQL refuses."""
    _check_lengths({"identity": identity, "version": version})


def _check_lengths(values: Mapping[str, object]) -> None:
    """ValidationFailed naming each text value longer than its `ocpp_charge_points` column allows."""
    errors = {
        name: [f"longer than {length} characters"]
        for name, value in values.items()
        if isinstance(value, str) and (length := getattr(_points.c[name].type, "length", None)) and len(value) > length
    }
    if errors:
        raise ValidationFailed(errors)
