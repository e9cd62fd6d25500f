"""The OCPP tap's identity registry in the service's database: the one module that writes its `ocpp_*` tables.

Several taps may share the database (taps in front of different charge points, a tap moved to another host), so
every id is handed out by a unique constraint rather than by a reader that checked first: the insert that loses a
race does nothing (`ON CONFLICT DO NOTHING`, on PostgreSQL after waiting for the winner's commit) and the loser
reads the winner's row. Each statement is a transaction of its own; none holds SQLite's write lock for long.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Integer,
    Table,
    Update,
    and_,
    bindparam,
    column,
    false,
    func,
    insert,
    select,
    true,
    update,
    values,
)
from sqlalchemy.orm import aliased

from chargewire.errors import ValidationFailed
from chargewire.store.database import Database
from chargewire.store.dialects.writes import Statement
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


@dataclass(frozen=True, slots=True)
class ChargePointRecord:
    """One charge point the tap has seen, as `chargewire ocpp charge-points` and the back office list it."""

    identity: str
    charge_point_id: int
    version: str | None
    connected: bool
    changed_at: datetime
    last_message_at: datetime | None


@dataclass(frozen=True, slots=True)
class StartedSession:
    """A transaction's start as recorded: its session id, EVSE, id tag, start time (the charge point's) and meter."""

    id: int
    evse_id: int
    id_tag: str | None
    started_at: str
    meter_start: int
    stopped: bool


@dataclass(frozen=True, slots=True)
class SessionStart:
    """What a new transaction's row holds: whose, on which EVSE, under which transaction id, and its start."""

    charge_point_id: int
    evse_id: int
    transaction_key: str
    id_tag: str | None
    started_at: str
    meter_start: int


@dataclass(frozen=True, slots=True)
class StartRecorded:
    """What recording a start did: made a session (`session_id`), repeated an open one (the transaction id it
    `repeats`), or neither (its transaction id was recorded already)."""

    session_id: int | None = None
    repeats: str | None = None


class OcppRegistryStore:
    """Reads and writes the `ocpp_charge_points`, `ocpp_evses`, `ocpp_sessions` and `ocpp_counters` tables."""

    def __init__(self, database: Database) -> None:
        self._database = database
        dialect = database.dialect
        self._record_connected = (
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
            .values(connected=True)
            .returning(_points.c.id)
        )
        self._insert_evse = dialect.insert_on_conflict(_evses, ["charge_point_id", "connector"]).returning(_evses.c.id)
        self._insert_session = dialect.insert_on_conflict(_sessions, ["charge_point_id", "transaction_key"]).returning(
            _sessions.c.id
        )
        self._next_number = dialect.insert_on_conflict(
            _counters, ["charge_point_id", "name"], lambda _: {"value": _counters.c.value + 1}
        ).returning(_counters.c.value)

    async def record_connected(self, identity: str, version: str | None, tap: str, at: datetime) -> int:
        """Record that `identity` connected to `tap` speaking `version`; returns its charge point id (new or kept).

        ValidationFailed, before any write, for an identity or version longer than its column: a charge point
        names both (its URL's path, the subprotocol), and SQLite would store what PostgreSQL refuses.
        """
        values = {"identity": identity, "version": version, "tap": tap[:_TAP_LENGTH], "changed_at": at}
        _check_lengths(values)
        values["last_message_at"] = at
        async with self._database.transaction() as connection:
            return int((await connection.execute(self._record_connected, values)).scalar_one())

    async def record_disconnected(self, charge_point_id: int, tap: str, at: datetime) -> None:
        """Record that a charge point's connection to `tap` closed; unchanged if it connected to another tap since."""
        statement = (
            update(_points)
            .where(_points.c.id == charge_point_id, _points.c.tap == tap)
            .values(connected=False, changed_at=at, last_message_at=at)
        )
        async with self._database.transaction() as connection:
            await connection.execute(statement)

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
        async with self._database.transaction() as connection:
            await self._database.dialect.write_last(connection, writes)

    async def evse_id(self, charge_point_id: int, connector: int) -> int:
        """The id of a charge point's connector (1.6) or EVSE (2.0.1), handed out on first use."""
        key = {"charge_point_id": charge_point_id, "connector": connector}
        async with self._database.transaction() as connection:
            inserted = (await connection.execute(self._insert_evse, key)).scalar()
        if inserted is not None:
            return int(inserted)
        found = select(_evses.c.id).where(_evses.c.charge_point_id == charge_point_id, _evses.c.connector == connector)
        async with self._database.reading() as connection:
            return int((await connection.execute(found)).scalar_one())

    async def record_start(self, start: SessionStart) -> StartRecorded:
        """Record a transaction's start, in one transaction with the look for an open session it repeats.

        A start with a new transaction id but the same EVSE, time and meter start as an open session repeats it (a
        charge point that lost the answer to its start started again and got a new id): the new id is recorded as
        another name of that session (`same_as`).
        """
        same_start = (
            select(_sessions.c.id, _sessions.c.transaction_key)
            .where(
                _sessions.c.charge_point_id == start.charge_point_id,
                _sessions.c.evse_id == start.evse_id,
                _sessions.c.started_at == start.started_at,
                _sessions.c.meter_start == start.meter_start,
                _sessions.c.stopped == false(),
                _sessions.c.same_as.is_(None),
            )
            .order_by(_sessions.c.id)
            .limit(1)
        )
        values = {
            "charge_point_id": start.charge_point_id,
            "evse_id": start.evse_id,
            "transaction_key": start.transaction_key,
            "id_tag": start.id_tag,
            "started_at": start.started_at,
            "meter_start": start.meter_start,
            "stopped": False,
        }
        async with self._database.transaction() as connection:
            original = (await connection.execute(same_start)).first()
            values["same_as"] = None if original is None else original.id
            inserted = (await connection.execute(self._insert_session, values)).scalar()
        if original is not None:
            return StartRecorded(repeats=original.transaction_key)
        return StartRecorded(session_id=None if inserted is None else int(inserted))

    async def find_session(self, charge_point_id: int, transaction_key: str) -> StartedSession | None:
        """The session a transaction id names (following `same_as`), open or stopped; None if never recorded."""
        named = aliased(_sessions, name="named")
        started = _sessions
        query = (
            select(
                started.c.id,
                started.c.evse_id,
                started.c.id_tag,
                started.c.started_at,
                started.c.meter_start,
                started.c.stopped,
            )
            .select_from(named.join(started, started.c.id == func.coalesce(named.c.same_as, named.c.id)))
            .where(and_(named.c.charge_point_id == charge_point_id, named.c.transaction_key == transaction_key))
        )
        async with self._database.reading() as connection:
            row = (await connection.execute(query)).first()
        return None if row is None else StartedSession(**row._mapping)

    async def mark_stopped(self, session_id: int) -> bool:
        """Mark a session stopped; False when it already was (a repeated stop, or another tap's)."""
        statement = (
            update(_sessions).where(_sessions.c.id == session_id, _sessions.c.stopped == false()).values(stopped=True)
        )
        async with self._database.transaction() as connection:
            return bool((await connection.execute(statement)).rowcount == 1)

    async def next_number(self, charge_point_id: int, name: str) -> int:
        """Take the next number of a per-charge-point sequence (`authorization`, `diagnostics`), from 1."""
        values = {"charge_point_id": charge_point_id, "name": name, "value": 1}
        async with self._database.transaction() as connection:
            return int((await connection.execute(self._next_number, values)).scalar_one())

    async def current_number(self, charge_point_id: int, name: str) -> int:
        """The latest number of a per-charge-point sequence, 0 when it has none yet."""
        query = select(_counters.c.value).where(
            _counters.c.charge_point_id == charge_point_id, _counters.c.name == name
        )
        async with self._database.reading() as connection:
            return int((await connection.execute(query)).scalar() or 0)

    async def list_charge_points(self) -> list[ChargePointRecord]:
        """Every charge point any tap has seen, by identity."""
        query = select(
            _points.c.identity,
            _points.c.id.label("charge_point_id"),
            _points.c.version,
            _points.c.connected,
            _points.c.changed_at,
            _points.c.last_message_at,
        ).order_by(_points.c.identity)
        async with self._database.reading() as connection:
            rows = (await connection.execute(query)).all()
        return [ChargePointRecord(**row._mapping) for row in rows]

    async def is_empty(self) -> bool:
        """Whether no tap has recorded a charge point yet."""
        async with self._database.reading() as connection:
            return (await connection.execute(select(_points.c.id).limit(1))).first() is None

    async def insert_imported(self, rows: Mapping[Table, Sequence[Mapping[str, Any]]]) -> None:
        """Insert an older tap's registry as it was, ids included, in one transaction (`sources.ocpp.legacy_state`)."""
        async with self._database.transaction() as connection:
            for table in REGISTRY_TABLES:
                if rows.get(table):
                    await connection.execute(insert(table), list(rows[table]))
            for table in _GENERATED_IDS:
                await self._database.dialect.continue_ids(connection, table)


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


def _check_lengths(values: Mapping[str, object]) -> None:
    """ValidationFailed naming each text value longer than its `ocpp_charge_points` column allows."""
    errors = {
        name: [f"longer than {length} characters"]
        for name, value in values.items()
        if isinstance(value, str) and (length := getattr(_points.c[name].type, "length", None)) and len(value) > length
    }
    if errors:
        raise ValidationFailed(errors)
