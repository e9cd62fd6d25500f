"""Stopped OCPP sessions leave the registry once they are older than the time they are kept, on both stores; open
sessions and newer stopped ones stay."""

from __future__ import annotations

import pytest

from chargewire.runtime import Runtime
from chargewire.sources.ocpp import Registry
from chargewire.store import ocpp_registry_store
from chargewire.store.ocpp_registry_store import OcppRegistryStore

LONG_AGO = "2020-01-01T10:00:00.000Z"
KEPT_S = 7 * 86400.0


async def test_stopped_sessions_older_than_kept_are_removed_with_their_other_transaction_ids(runtime: Runtime) -> None:
    registry = Registry(OcppRegistryStore(runtime.database), "host-a 0.0.0.0:9000")
    charge_point = await registry.connected("CP-EXPIRY", "ocpp1.6")
    evse, other_evse = await registry.evse_id(charge_point, 1), await registry.evse_id(charge_point, 2)
    old = await registry.start_session(charge_point, evse, "1", None, LONG_AGO, 0)
    assert old is not None
    assert await registry.start_session(charge_point, evse, "2", None, LONG_AGO, 0) is None  # "1" started again
    again = await registry.session(charge_point, "2")
    assert again is not None
    assert again.id == old.id
    assert await registry.start_session(charge_point, other_evse, "3", None, LONG_AGO, 0) is not None
    assert await registry.stop_session(charge_point, old)

    expired = await registry.expire_stopped(KEPT_S)

    after = Registry(OcppRegistryStore(runtime.database), "host-a 0.0.0.0:9000")
    assert expired == 2
    assert await after.session(charge_point, "1") is None
    assert await after.session(charge_point, "2") is None
    still_open = await after.session(charge_point, "3")
    assert still_open is not None
    assert not still_open.stopped


async def test_a_recently_started_stopped_session_is_kept(runtime: Runtime) -> None:
    registry = Registry(OcppRegistryStore(runtime.database), "host-a 0.0.0.0:9000")
    charge_point = await registry.connected("CP-RECENT", "ocpp1.6")
    session = await registry.start_session(
        charge_point, await registry.evse_id(charge_point, 1), "9", None, "2999-01-01T00:00:00.000Z", 0
    )
    assert session is not None
    await registry.stop_session(charge_point, session)

    assert await registry.expire_stopped(KEPT_S) == 0
    found = await Registry(OcppRegistryStore(runtime.database), "host-a 0.0.0.0:9000").session(charge_point, "9")
    assert found is not None
    assert found.stopped


async def test_every_old_stopped_session_goes_when_there_are_more_than_one_transaction_removes(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ocpp_registry_store, "_EXPIRED_PER_TRANSACTION", 2)
    registry = Registry(OcppRegistryStore(runtime.database), "host-a 0.0.0.0:9000")
    charge_point = await registry.connected("CP-MANY", "ocpp1.6")
    for connector in range(1, 6):
        evse = await registry.evse_id(charge_point, connector)
        session = await registry.start_session(charge_point, evse, str(connector), None, LONG_AGO, 0)
        assert session is not None
        await registry.stop_session(charge_point, session)

    assert await registry.expire_stopped(KEPT_S) == 5
    assert await registry.expire_stopped(KEPT_S) == 0
