"""The identity registry: stable integer ids for OCPP identities, connectors and transactions, in the database.

OCPP identities are strings and transaction ids are the CSMS's (1.6) or the charge point's (2.0.1), while
the catalog's payloads want integers: `chargePointId`, `evseId`, `sessionId`. The registry hands them out
once and keeps them in the service's database (`store.ocpp_registry_store`), with each open session's start
(its connector, id tag, start time and meter start), so a tap restarted in the middle of a session, or another
tap the charge point reconnects to, still publishes the right stop. Reads come from memory after the first;
writes happen on connect, disconnect, a new connector, a session's start and stop and a number taken, each batch
of them in one transaction (`registry_writes`), and the times of the last messages are written together every few
seconds (`flush`), so the cost per frame does not grow.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from chargewire.clock import utcnow
from chargewire.sources.ocpp.registry_writes import BatchedWrites
from chargewire.store.ocpp_registry_store import (
    ChargePointRecord,
    OcppRegistryStore,
    SessionStart,
    StartedSession,
    check_identity,
)

__all__ = ["ChargePointRecord", "Registry", "Session"]


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

    @classmethod
    def of(cls, started: StartedSession, transaction_key: str) -> Session:
        """The session a stored start describes, under the transaction id it was looked up by."""
        return cls(
            started.id,
            started.evse_id,
            transaction_key,
            started.id_tag,
            started.started_at,
            started.meter_start,
            started.stopped,
        )


class Registry:
    """Ids and open sessions, cached in memory over the store; `tap` names this tap among those sharing it."""

    def __init__(self, store: OcppRegistryStore, tap: str) -> None:
        self._store = store
        self._tap = tap
        self._writes = BatchedWrites(store, tap)
        self._evses: dict[tuple[int, int], int] = {}
        self._sessions: dict[tuple[int, str], Session] = {}
        self._last_messages: dict[int, datetime] = {}

    async def starting(self) -> None:
        """Mark this tap's charge points disconnected: a tap that starts holds no connections yet (after a crash)."""
        await self._store.disconnect_tap(self._tap)

    async def connected(self, identity: str, version: str | None) -> int:
        """Record that `identity` connected speaking `version`; returns its `chargePointId`.

        ValidationFailed, before any write, for an identity or version longer than the registry keeps.
        """
        check_identity(identity, version)
        return await self._writes.connect(identity, version)

    async def disconnected(self, charge_point_id: int) -> None:
        """Record that a charge point's connection closed."""
        self._last_messages.pop(charge_point_id, None)
        await self._writes.disconnect(charge_point_id)

    def heard_from(self, charge_point_id: int) -> None:
        """Note that a charge point's exchange completed now; written by the next `flush`."""
        self._last_messages[charge_point_id] = utcnow()

    async def flush(self) -> None:
        """Write the times of the last messages noted since the previous flush, in one statement.

        If the write fails the times are kept (unless newer ones were noted meanwhile) for the next flush.
        """
        if not self._last_messages:
            return
        noted, self._last_messages = self._last_messages, {}
        try:
            await self._store.record_last_messages(noted)
        except BaseException:
            self._last_messages = noted | self._last_messages
            raise

    async def evse_id(self, charge_point_id: int, connector: int) -> int:
        """The `evseId` of a charge point's connector (1.6) or EVSE (2.0.1)."""
        key = (charge_point_id, connector)
        evse_id = self._evses.get(key)
        if evse_id is None:
            evse_id = self._evses[key] = await self._writes.evse(charge_point_id, connector)
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
        """Record a new transaction; None when it was already recorded (a repeated start, or another tap's).

        A start with a new transaction id but the same EVSE, time and meter start as an open session is that
        session started again (a charge point retrying a start whose answer it lost gets a new id from the
        CSMS): its id becomes another name of the same session.
        """
        start = SessionStart(charge_point_id, evse_id, transaction_key, id_tag, started_at, meter_start)
        recorded = await self._writes.start(start)
        if recorded.repeats is not None:
            original = await self.session(charge_point_id, recorded.repeats)
            if original is not None:
                self._sessions[(charge_point_id, transaction_key)] = original
            return None
        if recorded.session_id is None:
            return None
        session = Session(recorded.session_id, evse_id, transaction_key, id_tag, started_at, meter_start)
        self._sessions[(charge_point_id, transaction_key)] = session
        return session

    async def session(self, charge_point_id: int, transaction_key: str) -> Session | None:
        """The session of a transaction, open or stopped, or None when no tap saw it start."""
        key = (charge_point_id, transaction_key)
        session = self._sessions.get(key)
        if session is not None:
            return session
        started = await self._store.find_session(charge_point_id, transaction_key)
        if started is None:
            return None
        session = Session.of(started, transaction_key)
        if not session.stopped:
            self._sessions[key] = session
        return session

    async def stop_session(self, charge_point_id: int, session: Session) -> bool:
        """Mark a session stopped; False when it already was (a repeated stop)."""
        first = await self._writes.stop(session.id)
        session.stopped = True
        self._sessions.pop((charge_point_id, session.transaction_key), None)
        return first

    async def expire_stopped(self, kept_s: float) -> int:
        """Remove the sessions that stopped and started more than `kept_s` ago; returns how many rows went."""
        cutoff = (utcnow() - timedelta(seconds=kept_s)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        return await self._store.expire_stopped_sessions(cutoff)

    async def next_number(self, charge_point_id: int, name: str) -> int:
        """The next number of a per-charge-point sequence (`authorization`, `diagnostics`)."""
        return await self._writes.take_number(charge_point_id, name)

    async def current_number(self, charge_point_id: int, name: str) -> int:
        """The latest number of a per-charge-point sequence, 0 when it has none yet."""
        return await self._store.current_number(charge_point_id, name)
