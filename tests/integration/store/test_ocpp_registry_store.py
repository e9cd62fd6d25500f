"""The OCPP tap's identity registry in the service's database, on both stores: stable ids, and one id per identity,
EVSE and session when taps that share the database race for it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from chargewire.errors import ValidationFailed
from chargewire.runtime import Runtime
from chargewire.sources.ocpp import Registry, list_charge_points
from chargewire.store.database import Database, create_database
from chargewire.store.ocpp_registry_store import OcppRegistryStore

RACERS = 8
T0 = "2025-03-01T10:00:00.000Z"
T_CONNECTED = datetime(2025, 3, 1, 10, tzinfo=UTC)


@pytest.fixture
async def second_database(runtime: Runtime) -> AsyncIterator[Database]:
    """Another connection pool on the test's database: what a second tap process has."""
    database = create_database(runtime.settings.effective_database_url)
    yield database
    await database.aclose()


def registries(runtime: Runtime, second_database: Database) -> tuple[Registry, Registry]:
    """Two taps' registries over one database, each through its own pool."""
    return (
        Registry(OcppRegistryStore(runtime.database), "host-a 0.0.0.0:9000"),
        Registry(OcppRegistryStore(second_database), "host-b 0.0.0.0:9000"),
    )


async def test_ids_stay_the_same_when_the_tap_restarts_on_the_same_database(
    runtime: Runtime, second_database: Database
) -> None:
    before = Registry(OcppRegistryStore(runtime.database), "host-a 0.0.0.0:9000")
    charge_point = await before.connected("CP-STABLE", "ocpp1.6")
    evse = await before.evse_id(charge_point, 2)
    session = await before.start_session(charge_point, evse, "41", "TAG", T0, 500)
    assert session is not None

    after = Registry(OcppRegistryStore(second_database), "host-a 0.0.0.0:9000")
    await after.starting()

    assert await after.connected("CP-STABLE", "ocpp1.6") == charge_point
    assert await after.evse_id(charge_point, 2) == evse
    found = await after.session(charge_point, "41")
    assert found is not None
    assert (found.id, found.evse_id, found.id_tag, found.started_at, found.meter_start) == (
        session.id,
        evse,
        "TAG",
        T0,
        500,
    )
    assert await after.connected("CP-OTHER", "ocpp1.6") != charge_point


async def test_two_taps_racing_for_a_new_identity_evse_and_session_get_one_id_each(
    runtime: Runtime, second_database: Database
) -> None:
    first, second = registries(runtime, second_database)
    both = [first, second] * (RACERS // 2)

    charge_points = await asyncio.gather(*(tap.connected("CP-RACE", "ocpp1.6") for tap in both))
    charge_point = charge_points[0]
    evses = await asyncio.gather(*(tap.evse_id(charge_point, 1) for tap in both))
    starts = await asyncio.gather(*(tap.start_session(charge_point, evses[0], "77", "TAG", T0, 0) for tap in both))
    found = await asyncio.gather(*(tap.session(charge_point, "77") for tap in (first, second)))
    numbers = await asyncio.gather(*(tap.next_number(charge_point, "authorization") for tap in both))

    assert set(charge_points) == {charge_point}
    assert len(set(evses)) == 1
    started = [start for start in starts if start is not None]
    assert len(started) == 1
    assert {session.id for session in found if session is not None} == {started[0].id}
    assert sorted(numbers) == list(range(1, RACERS + 1))
    assert [record.identity for record in await list_charge_points(runtime.database)] == ["CP-RACE"]


async def test_a_session_stopped_through_one_tap_is_stopped_once_for_both(
    runtime: Runtime, second_database: Database
) -> None:
    first, second = registries(runtime, second_database)
    charge_point = await first.connected("CP-STOP", "ocpp1.6")
    session = await first.start_session(charge_point, await first.evse_id(charge_point, 1), "5", None, T0, 0)
    assert session is not None
    elsewhere = await second.session(charge_point, "5")
    assert elsewhere is not None

    stops = await asyncio.gather(
        first.stop_session(charge_point, session), second.stop_session(charge_point, elsewhere)
    )

    assert sorted(stops) == [False, True]
    again = await second.session(charge_point, "5")
    assert again is not None
    assert again.stopped


async def test_a_starting_tap_marks_only_its_own_charge_points_disconnected(
    runtime: Runtime, second_database: Database
) -> None:
    first, second = registries(runtime, second_database)
    await first.connected("CP-ON-A", "ocpp1.6")
    await second.connected("CP-ON-B", "ocpp2.0.1")

    await Registry(OcppRegistryStore(runtime.database), "host-a 0.0.0.0:9000").starting()

    listed = {record.identity: record.connected for record in await list_charge_points(runtime.database)}
    assert listed == {"CP-ON-A": False, "CP-ON-B": True}


async def test_an_old_connection_closing_leaves_a_charge_point_connected_to_its_new_tap(
    runtime: Runtime, second_database: Database
) -> None:
    first, second = registries(runtime, second_database)
    charge_point = await first.connected("CP-MOVED", "ocpp1.6")
    assert await second.connected("CP-MOVED", "ocpp1.6") == charge_point

    await first.disconnected(charge_point)

    [record] = await list_charge_points(runtime.database)
    assert record.connected


async def test_last_message_times_are_written_by_flush_not_when_heard(runtime: Runtime) -> None:
    registry = Registry(OcppRegistryStore(runtime.database), "host-a 0.0.0.0:9000")
    charge_point = await registry.connected("CP-HEARD", "ocpp1.6")
    [connected] = await list_charge_points(runtime.database)

    registry.heard_from(charge_point)
    [unflushed] = await list_charge_points(runtime.database)
    await registry.flush()
    [flushed] = await list_charge_points(runtime.database)

    assert unflushed.last_message_at == connected.last_message_at
    assert flushed.last_message_at is not None
    assert connected.last_message_at is not None
    assert flushed.last_message_at > connected.last_message_at


async def test_one_flush_writes_each_charge_points_own_time_when_more_are_heard_than_one_statement_sets(
    runtime: Runtime,
) -> None:
    store = OcppRegistryStore(runtime.database)
    heard: dict[int, datetime] = {}
    for number in range(300):  # one statement sets 256; the second is padded
        charge_point = await store.record_connected(f"CP-{number:03}", "ocpp1.6", "host-a 0.0.0.0:9000", T_CONNECTED)
        heard[charge_point] = T_CONNECTED + timedelta(seconds=number + 1)

    await store.record_last_messages(heard)

    listed = {record.charge_point_id: record.last_message_at for record in await list_charge_points(runtime.database)}
    assert listed == heard


async def test_an_identity_longer_than_its_column_is_refused_alike_on_both_stores(runtime: Runtime) -> None:
    registry = Registry(OcppRegistryStore(runtime.database), "host-a 0.0.0.0:9000")

    with pytest.raises(ValidationFailed) as refused:
        await registry.connected("CP-" + "X" * 253, "ocpp1.6")

    assert list(refused.value.errors) == ["identity"]
    assert await list_charge_points(runtime.database) == []
