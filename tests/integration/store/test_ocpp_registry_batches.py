"""The OCPP registry's writes asked for together go to the database together, on both stores: one transaction for
many charge points' connects, EVSEs, starts, stops and numbers, and a refused write fails alone."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.exc import IntegrityError

from chargewire.runtime import Runtime
from chargewire.sources.ocpp import Registry
from chargewire.store.ocpp_registry_store import OcppRegistryStore

CHARGE_POINTS = 100
T0 = "2025-03-01T10:00:00.000Z"
MISSING_EVSE = 999_999


class TransactionCount:
    """Counts the write transactions begun on a database."""

    def __init__(self, runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        begin = runtime.database.transaction

        @contextlib.asynccontextmanager
        async def counted() -> AsyncIterator[object]:
            self.count += 1
            async with begin() as connection:
                yield connection

        monkeypatch.setattr(runtime.database, "transaction", counted)

    def taken(self) -> int:
        """The transactions begun since the last call."""
        taken, self.count = self.count, 0
        return taken


async def test_many_charge_points_writes_asked_together_take_one_transaction_per_round(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = Registry(OcppRegistryStore(runtime.database), "host-a 0.0.0.0:9000")
    transactions = TransactionCount(runtime, monkeypatch)
    identities = [f"CP-BATCH-{number:03}" for number in range(CHARGE_POINTS)]

    charge_points = await asyncio.gather(*(registry.connected(identity, "ocpp1.6") for identity in identities))
    assert transactions.taken() == 1
    evses = await asyncio.gather(*(registry.evse_id(charge_point, 1) for charge_point in charge_points))
    assert transactions.taken() == 1
    sessions = await asyncio.gather(
        *(
            registry.start_session(point, evse, "1", "TAG", T0, 0)
            for point, evse in zip(charge_points, evses, strict=True)
        )
    )
    assert transactions.taken() == 1
    numbers = await asyncio.gather(*(registry.next_number(0, "authorization") for _ in charge_points))
    stops = await asyncio.gather(
        *(
            registry.stop_session(point, session)
            for point, session in zip(charge_points, sessions, strict=True)
            if session
        )
    )
    await asyncio.gather(*(registry.disconnected(charge_point) for charge_point in charge_points))

    assert transactions.taken() == 3
    assert len(set(charge_points)) == len(set(evses)) == CHARGE_POINTS
    assert len({session.id for session in sessions if session is not None}) == CHARGE_POINTS
    assert sorted(numbers) == list(range(1, CHARGE_POINTS + 1))
    assert all(stops)
    assert [await registry.connected(identity, "ocpp1.6") for identity in identities[:3]] == charge_points[:3]


async def test_a_write_the_database_refuses_fails_alone_when_it_was_asked_with_others(runtime: Runtime) -> None:
    registry = Registry(OcppRegistryStore(runtime.database), "host-a 0.0.0.0:9000")
    good, bad = await asyncio.gather(registry.connected("CP-GOOD", "ocpp1.6"), registry.connected("CP-BAD", "ocpp1.6"))
    evse = await registry.evse_id(good, 1)

    started, refused = await asyncio.gather(
        registry.start_session(good, evse, "7", None, T0, 0),
        registry.start_session(bad, MISSING_EVSE, "8", None, T0, 0),
        return_exceptions=True,
    )

    assert isinstance(refused, IntegrityError)
    assert not isinstance(started, BaseException)
    assert started is not None
    assert await registry.session(good, "7") == started
