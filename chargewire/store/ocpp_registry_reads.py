"""Reading the OCPP tap's identity registry: sessions, sequences and charge points, as records.

`OcppRegistryStore` (the one module that writes the `ocpp_*` tables) extends it with the writes.
"""

from __future__ import annotations

from sqlalchemy import and_, func, select
from sqlalchemy.orm import aliased

from chargewire.store.database import Database
from chargewire.store.ocpp_registry_records import ChargePointRecord, StartedSession
from chargewire.store.tables import ocpp_charge_points as _points
from chargewire.store.tables import ocpp_counters as _counters
from chargewire.store.tables import ocpp_sessions as _sessions


class OcppRegistryReads:
    """Reads the `ocpp_charge_points`, `ocpp_sessions` and `ocpp_counters` tables."""

    def __init__(self, database: Database) -> None:
        self._database = database

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
