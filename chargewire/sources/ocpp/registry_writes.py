"""The registry's writes gathered into batches: what a tick of the pipeline asks for goes in one transaction.

The pipeline derives the observations of a batch concurrently (one task per charge point), and each derivation
that needs a write (a connect, a new EVSE, a session's start or stop, a number) asks here and waits. The writes
asked for while the previous batch was being written go to the database together
(`OcppRegistryStore.write`), so a backlog costs a few transactions instead of one per write. A write that the
database refuses (not an outage) is tried again alone, so that it fails alone.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from chargewire.clock import utcnow
from chargewire.store.ocpp_registry_store import (
    OcppRegistryStore,
    RegistryIds,
    RegistryWrites,
    SessionStart,
    StartRecorded,
)
from chargewire.store.outage import is_unavailable

logger = logging.getLogger(__name__)

_Waiters = defaultdict[tuple[str, Any], list["asyncio.Future[Any]"]]


@dataclass(slots=True)
class _Batch:
    """Writes asked for, and who waits for each (by kind and key), in the order asked."""

    writes: RegistryWrites = field(default_factory=RegistryWrites)
    waiters: _Waiters = field(default_factory=lambda: defaultdict(list))


class BatchedWrites:
    """Gathers the registry's writes and makes them one batch (one transaction) at a time."""

    def __init__(self, store: OcppRegistryStore, tap: str) -> None:
        self._store = store
        self._tap = tap
        self._next = _Batch()
        self._writing: asyncio.Task[None] | None = None

    async def connect(self, identity: str, version: str | None) -> int:
        """The charge point id of `identity`, recorded as connected to this tap speaking `version`."""
        self._next.writes.connects[identity] = (version, utcnow())
        result: int = await self._wait("connects", identity)
        return result

    async def disconnect(self, charge_point_id: int) -> None:
        """Record that a charge point's connection to this tap closed."""
        self._next.writes.disconnects.add(charge_point_id)
        self._next.writes.disconnected_at = utcnow()
        await self._wait("disconnects", charge_point_id)

    async def evse(self, charge_point_id: int, connector: int) -> int:
        """The id of a charge point's connector or EVSE, handed out on first use."""
        self._next.writes.evses.add((charge_point_id, connector))
        result: int = await self._wait("evses", (charge_point_id, connector))
        return result

    async def start(self, start: SessionStart) -> StartRecorded:
        """Record a transaction's start (`OcppRegistryStore.write`); a repeat of it in the same batch made nothing."""
        key = (start.charge_point_id, start.transaction_key)
        self._next.writes.starts.setdefault(key, start)
        result: StartRecorded = await self._wait("starts", key)
        return result

    async def stop(self, session_id: int) -> bool:
        """Mark a session stopped; False when it already was (or another in the same batch stopped it)."""
        self._next.writes.stops.add(session_id)
        result: bool = await self._wait("stops", session_id)
        return result

    async def take_number(self, charge_point_id: int, name: str) -> int:
        """The next number of a per-charge-point sequence."""
        key = (charge_point_id, name)
        self._next.writes.numbers[key] = self._next.writes.numbers.get(key, 0) + 1
        result: int = await self._wait("numbers", key)
        return result

    def _wait(self, kind: str, key: Any) -> asyncio.Future[Any]:
        waiter = asyncio.get_running_loop().create_future()
        self._next.waiters[(kind, key)].append(waiter)
        if self._writing is None:
            self._writing = asyncio.create_task(self._write_batches())
        return waiter

    async def _write_batches(self) -> None:
        """Write batch after batch until none is waiting; what is asked meanwhile goes in the next one."""
        try:
            while self._next.writes:
                # A turn of the loop first: the other derivations of this tick ask for their writes too.
                await asyncio.sleep(0)
                batch, self._next = self._next, _Batch()
                await self._write(batch)
        finally:
            self._writing = None

    async def _write(self, batch: _Batch) -> None:
        try:
            ids = await self._store.write(batch.writes, self._tap)
        except Exception as error:
            if is_unavailable(error) or len(batch.waiters) == 1:
                _fail(batch, error)
                return
            for single in _singles(batch):
                await self._write(single)
            return
        _resolve(batch, ids)


def _resolve(batch: _Batch, ids: RegistryIds) -> None:
    """Give each waiter what it asked for; of several waiting for one key, only the first gets a start or stop."""
    results: dict[str, Any] = {
        "connects": ids.charge_points,
        "evses": ids.evses,
        "numbers": ids.numbers,
    }
    for (kind, key), waiters in batch.waiters.items():
        for position, waiter in enumerate(waiters):
            if waiter.done():
                continue  # its derivation was cancelled
            if kind == "starts":
                waiter.set_result(ids.starts.get(key, StartRecorded()) if position == 0 else StartRecorded())
            elif kind == "stops":
                waiter.set_result(position == 0 and key in ids.stopped)
            elif kind == "disconnects":
                waiter.set_result(None)
            elif kind == "numbers":
                waiter.set_result(results[kind][key] - len(waiters) + 1 + position)
            else:
                waiter.set_result(results[kind][key])


def _fail(batch: _Batch, error: Exception) -> None:
    for waiters in batch.waiters.values():
        for waiter in waiters:
            if not waiter.done():
                waiter.set_exception(error)


def _singles(batch: _Batch) -> list[_Batch]:
    """`batch` split into one batch per key asked for."""
    writes = batch.writes
    singles = []
    for (kind, key), waiters in batch.waiters.items():
        single = _Batch()
        single.waiters[(kind, key)] = waiters
        if kind == "connects":
            single.writes.connects[key] = writes.connects[key]
        elif kind == "disconnects":
            single.writes.disconnects.add(key)
            single.writes.disconnected_at = writes.disconnected_at
        elif kind == "evses":
            single.writes.evses.add(key)
        elif kind == "starts":
            single.writes.starts[key] = writes.starts[key]
        elif kind == "stops":
            single.writes.stops.add(key)
        else:
            single.writes.numbers[key] = writes.numbers[key]
        singles.append(single)
    return singles
