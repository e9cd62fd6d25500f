"""The identity registry: stable integer ids for OCPP identities, connectors and transactions, in a file.

OCPP identities are strings and transaction ids are the CSMS's (1.6) or the charge point's (2.0.1), while
the catalog's payloads want integers: `chargePointId`, `evseId`, `sessionId`. The registry hands them out
once and keeps them, with each open session's start (its connector, id tag, start time and meter start), so
a tap restarted in the middle of a session still publishes the right stop. It lives in a SQLite file of its
own (`ocpp_state_file`): the tap's bookkeeping, not the service's schema. Reads come from memory after the
first; writes happen on connect, disconnect, a new connector and a session's start and stop, and the times of
the last messages are written together every few seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import aiosqlite

from chargewire.sources.ocpp.mapping import now

_SCHEMA = """
PRAGMA journal_mode=WAL;
PRAGMA synchronous=NORMAL;
CREATE TABLE IF NOT EXISTS ocpp_charge_points (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    identity TEXT NOT NULL UNIQUE,
    version TEXT,
    connected INTEGER NOT NULL DEFAULT 0,
    changed_at TEXT NOT NULL,
    last_message_at TEXT
);
CREATE TABLE IF NOT EXISTS ocpp_evses (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    charge_point_id INTEGER NOT NULL,
    connector INTEGER NOT NULL,
    UNIQUE (charge_point_id, connector)
);
CREATE TABLE IF NOT EXISTS ocpp_sessions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    charge_point_id INTEGER NOT NULL,
    evse_id INTEGER NOT NULL,
    transaction_key TEXT NOT NULL,
    id_tag TEXT,
    started_at TEXT NOT NULL,
    meter_start INTEGER NOT NULL,
    stopped INTEGER NOT NULL DEFAULT 0,
    same_as INTEGER,
    UNIQUE (charge_point_id, transaction_key)
);
CREATE TABLE IF NOT EXISTS ocpp_counters (
    charge_point_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    value INTEGER NOT NULL,
    PRIMARY KEY (charge_point_id, name)
);
"""

_UPSERT_CHARGE_POINT = """
INSERT INTO ocpp_charge_points (identity, version, connected, changed_at, last_message_at) VALUES (?, ?, 1, ?, ?)
ON CONFLICT (identity) DO UPDATE SET version = excluded.version, connected = 1, changed_at = excluded.changed_at,
    last_message_at = excluded.last_message_at
RETURNING id
"""
_MARK_ALL_DISCONNECTED = "UPDATE ocpp_charge_points SET connected = 0 WHERE connected = 1"
_MARK_DISCONNECTED = "UPDATE ocpp_charge_points SET connected = 0, changed_at = ?, last_message_at = ? WHERE id = ?"
_INSERT_EVSE = """
INSERT INTO ocpp_evses (charge_point_id, connector) VALUES (?, ?)
ON CONFLICT (charge_point_id, connector) DO UPDATE SET connector = excluded.connector RETURNING id
"""
_INSERT_SESSION = """
INSERT INTO ocpp_sessions (charge_point_id, evse_id, transaction_key, id_tag, started_at, meter_start)
VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (charge_point_id, transaction_key) DO NOTHING RETURNING id
"""
_INSERT_REPEATED_START = """
INSERT INTO ocpp_sessions (charge_point_id, evse_id, transaction_key, id_tag, started_at, meter_start, same_as)
VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (charge_point_id, transaction_key) DO NOTHING
"""
_FIND_SAME_START = """
SELECT transaction_key FROM ocpp_sessions WHERE charge_point_id = ? AND evse_id = ? AND started_at = ?
    AND meter_start = ? AND stopped = 0 AND same_as IS NULL
"""
_SELECT_SESSION = """
SELECT started.id, started.evse_id, started.id_tag, started.started_at, started.meter_start, started.stopped
FROM ocpp_sessions AS named JOIN ocpp_sessions AS started ON started.id = COALESCE(named.same_as, named.id)
WHERE named.charge_point_id = ? AND named.transaction_key = ?
"""
_MARK_STOPPED = "UPDATE ocpp_sessions SET stopped = 1 WHERE id = ? AND stopped = 0"
_NEXT_COUNTER = """
INSERT INTO ocpp_counters (charge_point_id, name, value) VALUES (?, ?, 1)
ON CONFLICT (charge_point_id, name) DO UPDATE SET value = value + 1 RETURNING value
"""
_SELECT_COUNTER = "SELECT value FROM ocpp_counters WHERE charge_point_id = ? AND name = ?"
_RECORD_LAST_MESSAGE = "UPDATE ocpp_charge_points SET last_message_at = ? WHERE id = ?"
_LIST_CHARGE_POINTS = """
SELECT identity, id, version, connected, changed_at, last_message_at FROM ocpp_charge_points ORDER BY identity
"""


@dataclass(slots=True)
class Session:
    """An OCPP transaction as the tap knows it; `energy_wh` and `soc_percent` are the latest readings seen."""

    id: int
    evse_id: int
    transaction_key: str
    id_tag: str | None
    started_at: str
    meter_start: int
    stopped: bool = False
    energy_wh: float | None = None
    soc_percent: float | None = None


@dataclass(frozen=True, slots=True)
class ChargePointRecord:
    """One row of `chargewire ocpp charge-points`."""

    identity: str
    charge_point_id: int
    version: str | None
    connected: bool
    changed_at: datetime
    last_message_at: datetime | None


class Registry:
    """Ids and open sessions, cached in memory over one SQLite connection."""

    def __init__(self, connection: aiosqlite.Connection) -> None:
        self._db = connection
        self._charge_points: dict[str, int] = {}
        self._evses: dict[tuple[int, int], int] = {}
        self._sessions: dict[tuple[int, str], Session] = {}
        self._last_messages: dict[int, str] = {}

    @classmethod
    async def open(cls, path: Path) -> Registry:
        """Open (and create when new) the registry file."""
        path.parent.mkdir(parents=True, exist_ok=True)
        connection = await aiosqlite.connect(path)
        await connection.executescript(_SCHEMA)
        return cls(connection)

    async def aclose(self) -> None:
        """Close the file."""
        await self._db.close()

    async def starting(self) -> None:
        """Mark every charge point disconnected: a tap that starts holds no connections yet (after a crash, say)."""
        await self._db.execute(_MARK_ALL_DISCONNECTED)
        await self._db.commit()

    async def connected(self, identity: str, version: str | None) -> int:
        """Record that `identity` connected speaking `version`; returns its `chargePointId`."""
        moment = now()
        rows = await self._db.execute_fetchall(_UPSERT_CHARGE_POINT, (identity, version, moment, moment))
        await self._db.commit()
        charge_point_id = int(next(iter(rows))[0])
        self._charge_points[identity] = charge_point_id
        return charge_point_id

    async def disconnected(self, charge_point_id: int) -> None:
        """Record that a charge point's connection closed."""
        moment = now()
        await self._db.execute(_MARK_DISCONNECTED, (moment, moment, charge_point_id))
        await self._db.commit()

    def heard_from(self, charge_point_id: int) -> None:
        """Note that a charge point's exchange completed now; written by the next `flush`."""
        self._last_messages[charge_point_id] = now()

    async def flush(self) -> None:
        """Write the times of the last messages noted since the previous flush, in one statement."""
        if not self._last_messages:
            return
        noted, self._last_messages = self._last_messages, {}
        await self._db.executemany(_RECORD_LAST_MESSAGE, [(moment, key) for key, moment in noted.items()])
        await self._db.commit()

    async def evse_id(self, charge_point_id: int, connector: int) -> int:
        """The `evseId` of a charge point's connector (1.6) or EVSE (2.0.1)."""
        key = (charge_point_id, connector)
        evse_id = self._evses.get(key)
        if evse_id is None:
            rows = await self._db.execute_fetchall(_INSERT_EVSE, key)
            await self._db.commit()
            evse_id = self._evses[key] = int(next(iter(rows))[0])
        return evse_id

    async def start_session(
        self,
        charge_point_id: int,
        evse_id: int,
        transaction_key: str,
        id_tag: str | None,
        started_at: str,
        meter_start: int,
    ) -> Session | None:
        """Record a new transaction; None when it was already recorded (a repeated start).

        A start with a new transaction id but the same EVSE, time and meter start as an open session is that
        session started again (a charge point retrying a start whose answer it lost gets a new id from the
        CSMS): its id becomes another name of the same session.
        """
        values = (charge_point_id, evse_id, transaction_key, id_tag, started_at, meter_start)
        same = list(
            await self._db.execute_fetchall(_FIND_SAME_START, (charge_point_id, evse_id, started_at, meter_start))
        )
        if same:
            original = await self.session(charge_point_id, str(same[0][0]))
            if original is not None:
                await self._db.execute(_INSERT_REPEATED_START, (*values, original.id))
                await self._db.commit()
                self._sessions[(charge_point_id, transaction_key)] = original
                return None
        rows = list(await self._db.execute_fetchall(_INSERT_SESSION, values))
        await self._db.commit()
        if not rows:
            return None
        session = Session(int(rows[0][0]), evse_id, transaction_key, id_tag, started_at, meter_start)
        self._sessions[(charge_point_id, transaction_key)] = session
        return session

    async def session(self, charge_point_id: int, transaction_key: str) -> Session | None:
        """The session of a transaction, open or stopped, or None when the tap never saw it start."""
        key = (charge_point_id, transaction_key)
        session = self._sessions.get(key)
        if session is not None:
            return session
        rows = list(await self._db.execute_fetchall(_SELECT_SESSION, key))
        if not rows:
            return None
        session_id, evse_id, id_tag, started_at, meter_start, stopped = rows[0]
        session = Session(int(session_id), int(evse_id), transaction_key, id_tag, started_at, int(meter_start))
        session.stopped = bool(stopped)
        if not session.stopped:
            self._sessions[key] = session
        return session

    async def stop_session(self, charge_point_id: int, session: Session) -> bool:
        """Mark a session stopped; False when it already was (a repeated stop)."""
        cursor = await self._db.execute(_MARK_STOPPED, (session.id,))
        await self._db.commit()
        session.stopped = True
        self._sessions.pop((charge_point_id, session.transaction_key), None)
        return cursor.rowcount == 1

    async def next_number(self, charge_point_id: int, name: str) -> int:
        """The next number of a per-charge-point sequence (`authorization`, `diagnostics`)."""
        rows = await self._db.execute_fetchall(_NEXT_COUNTER, (charge_point_id, name))
        await self._db.commit()
        return int(next(iter(rows))[0])

    async def current_number(self, charge_point_id: int, name: str) -> int:
        """The latest number of a per-charge-point sequence, 0 when it has none yet."""
        rows = list(await self._db.execute_fetchall(_SELECT_COUNTER, (charge_point_id, name)))
        return int(rows[0][0]) if rows else 0

    async def charge_points(self) -> list[ChargePointRecord]:
        """Every identity the tap has seen, with its id, version and connection state."""
        rows = await self._db.execute_fetchall(_LIST_CHARGE_POINTS)
        return [
            ChargePointRecord(
                row[0],
                int(row[1]),
                row[2],
                bool(row[3]),
                datetime.fromisoformat(row[4]),
                datetime.fromisoformat(row[5]) if row[5] else None,
            )
            for row in rows
        ]


async def list_charge_points(path: Path) -> list[ChargePointRecord]:
    """Every identity in the registry file at `path` (none when the tap never ran there)."""
    if not path.exists():  # noqa: ASYNC240 - one stat of a local file
        return []
    registry = await Registry.open(path)
    try:
        return await registry.charge_points()
    finally:
        await registry.aclose()
