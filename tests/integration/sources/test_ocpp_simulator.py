"""Simulated charge points (the `ocpp` package) through a real tap to the dev CSMS: the events they cause."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from functools import partial
from typing import Any

import orjson
from websockets.asyncio.server import ServerConnection, serve
from websockets.typing import Subprotocol

from chargewire.catalog import validate
from chargewire.devtools.csms import DevCsms
from chargewire.runtime import Runtime
from chargewire.sources.ocpp.simulator import Behaviour, Fleet, FleetOptions
from tests.integration.sources.conftest import TapStarter, stop_taps
from tests.support.ocpp import eventually, published

# Every step happens every 50 ms, with an hour of charging in each; every idle connector starts a session.
BUSY = Behaviour(
    meter_interval_s=0.05,
    speedup=3600,
    connectors=1,
    start_chance=1.0,
    stop_chance=0.3,
    fault_chance=0.0,
    security_event_chance=0.3,
    data_transfer_chance=0.3,
    disconnect_chance=0.0,
    reconnect_delay_s=0.05,
)


# What a minimal 1.6 CSMS answers, by action.
CSMS_ANSWERS: dict[str, dict[str, Any]] = {
    "BootNotification": {"currentTime": "2026-12-05T10:00:00Z", "interval": 300, "status": "Accepted"},
    "StatusNotification": {},
    "Authorize": {"idTagInfo": {"status": "Accepted"}},
    "StartTransaction": {"idTagInfo": {"status": "Accepted"}, "transactionId": 41},
    "MeterValues": {},
    "StopTransaction": {},
    "SecurityEventNotification": {},
    "DataTransfer": {"status": "Accepted"},
    "Heartbeat": {"currentTime": "2026-12-05T10:00:00Z"},
}


@contextlib.asynccontextmanager
async def running(fleet: Fleet) -> AsyncIterator[asyncio.Event]:
    """The fleet running in the background until the block ends."""
    stop = asyncio.Event()
    task = asyncio.create_task(fleet.run(stop))
    try:
        yield stop
    finally:
        stop.set()
        await task


async def simulate_through_tap(
    runtime: Runtime,
    csms: tuple[DevCsms, int],
    start_tap: TapStarter,
    running_taps: list[Any],
    behaviour: Behaviour,
    until: Callable[[Fleet], bool],
) -> tuple[Fleet, list[dict[str, Any]]]:
    """Run one 1.6 and one 2.0.1 charge point through a tap until `until(fleet)`; the events published, checked."""
    _, port = csms
    tap = await start_tap(f"ws://127.0.0.1:{port}/ocpp/")
    fleet = Fleet(FleetOptions(url=tap, charge_points=2, versions=("1.6", "2.0.1"), behaviour=behaviour))
    async with running(fleet):
        await eventually(lambda: until(fleet), timeout_s=30)
    await stop_taps(running_taps)
    events = await published(runtime.database)
    for payload in events:
        validate(payload)
    return fleet, events


def answered(dev_csms: DevCsms, identity: str, unique_id: str) -> bool:
    """Whether the CSMS has received the answer to its call `unique_id` from `identity`."""
    return any(orjson.loads(frame)[1] == unique_id for frame in dev_csms.frames_from(identity))


def named(events: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [event for event in events if event["notification"] == name]


def boots_by_version(events: list[dict[str, Any]]) -> dict[str, int]:
    """The chargePointId of each version's charge point (2.0.1 boots carry a reason, 1.6 ones do not)."""
    return {
        "2.0.1" if boot["bootNotification"]["reason"] else "1.6": boot["chargePointId"]
        for boot in named(events, "BootNotification")
    }


def sessions_of(events: list[dict[str, Any]], charge_point_id: int) -> dict[int, dict[str, dict[str, Any]]]:
    """Each session's start and stop events of one charge point, by sessionId."""
    sessions: dict[int, dict[str, dict[str, Any]]] = {}
    for event in named(events, "SessionStartStopNotification"):
        if event["chargePointId"] == charge_point_id:
            sessions.setdefault(event["sessionId"], {})[event["action"]] = event
    return sessions


async def test_simulated_charge_points_of_both_versions_cause_every_session_event_through_the_tap(
    runtime: Runtime, csms: tuple[DevCsms, int], start_tap: TapStarter, running_taps: list[Any]
) -> None:
    fleet, events = await simulate_through_tap(
        runtime, csms, start_tap, running_taps, BUSY, lambda fleet: fleet.tally.sessions_stopped >= 6
    )

    assert {
        "BootNotification",
        "NetworkStatusNotification",
        "HardwareStatusNotification",
        "authorization.changed",
        "SessionStartStopNotification",
        "SessionMeterValuesNotification",
        "SessionUpdateNotification",
        "SecurityEventNotification",
        "chargePoint.dataTransferReceived",
    } <= {event["notification"] for event in events}
    ids = boots_by_version(events)
    assert set(ids) == {"1.6", "2.0.1"}
    assert fleet.tally.refused_calls == 0
    for version, charge_point_id in ids.items():
        finished = [pair for pair in sessions_of(events, charge_point_id).values() if "stop" in pair]
        assert finished, f"no {version} session stopped"
        for pair in finished:
            start, stop = pair["start"], pair["stop"]
            assert stop["meterStart"] == start["meterStart"]
            assert stop["energyConsumed"] == stop["meterStop"] - stop["meterStart"] > 0
            assert stop["reason"] in {"local", "evdisconnected", "remote"}
    external_ids = {
        event["chargePointId"]: event["externalSessionId"] for event in named(events, "SessionStartStopNotification")
    }
    assert uuid.UUID(external_ids[ids["2.0.1"]]), "a 2.0.1 session is named by the station's transaction id"
    assert int(external_ids[ids["1.6"]]) > 0, "a 1.6 session is named by the CSMS's transaction id"


async def test_simulated_meter_values_arrive_in_wh_with_the_payloads_measurand_names(
    runtime: Runtime, csms: tuple[DevCsms, int], start_tap: TapStarter, running_taps: list[Any]
) -> None:
    _, events = await simulate_through_tap(
        runtime, csms, start_tap, running_taps, BUSY, lambda fleet: fleet.tally.sessions_stopped >= 2
    )

    ids = boots_by_version(events)
    for charge_point_id in ids.values():
        meters = [m for m in named(events, "SessionMeterValuesNotification") if m["chargePointId"] == charge_point_id]
        assert meters
        samples = {sample["measurand"]: sample for meter in meters for sample in meter["meterValues"]}
        assert samples["Energy Active Import Register"]["unit"] == "Wh"
        assert samples["Energy Active Import Register"]["value"] > 10_000
        assert samples["State Of Charge"]["unit"] == "Percent"
        assert samples["Current Import"]["unit"] == "A"


async def test_a_simulated_charge_point_that_drops_its_connection_reconnects_without_booting_and_goes_on_charging(
    runtime: Runtime, csms: tuple[DevCsms, int], start_tap: TapStarter, running_taps: list[Any]
) -> None:
    dropping = Behaviour(
        meter_interval_s=0.05, speedup=60, connectors=1, start_chance=1.0, stop_chance=0.0, disconnect_chance=0.5,
        fault_chance=0.0, security_event_chance=0.0, data_transfer_chance=0.0, reconnect_delay_s=0.05,
    )  # fmt: skip
    fleet, events = await simulate_through_tap(
        runtime, csms, start_tap, running_taps, dropping, lambda fleet: fleet.tally.connections >= 8
    )

    dev_csms, _ = csms
    for identity in ("SIM-0001", "SIM-0002"):
        actions = [orjson.loads(frame)[2] for frame in dev_csms.frames_from(identity)]
        assert actions.count("BootNotification") == 1
    assert len(named(events, "BootNotification")) == 2
    network = [event["networkStatus"] for event in named(events, "NetworkStatusNotification")]
    assert "temporarily unavailable" in network
    for charge_point_id in boots_by_version(events).values():
        [session_id] = sessions_of(events, charge_point_id)
        meters = [m for m in named(events, "SessionMeterValuesNotification") if m["chargePointId"] == charge_point_id]
        assert {meter["sessionId"] for meter in meters} == {session_id}
    assert fleet.tally.sessions_started == 2


async def test_simulated_charge_points_connect_straight_to_a_csms_with_basic_auth_and_a_wrong_password_is_refused() -> (
    None
):
    dev_csms = DevCsms(required_authorization="Basic U0lNLTAwMDE6c2VjcmV0")  # SIM-0001:secret
    async with await dev_csms.start() as server:
        url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/ocpp/"
        right = Fleet(FleetOptions(url=url, charge_points=1, versions=("2.0.1",), password="secret", behaviour=BUSY))
        async with running(right):
            await eventually(lambda: right.tally.sessions_started >= 1)
        wrong = Fleet(FleetOptions(url=url, charge_points=1, versions=("2.0.1",), password="guess", behaviour=BUSY))
        async with running(wrong):
            await eventually(lambda: wrong.tally.refused_connections >= 2)

    assert right.tally.connections == 1
    assert right.tally.refused_connections == 0
    assert wrong.tally.connections == 0
    actions = [orjson.loads(frame)[2] for frame in dev_csms.frames_from("SIM-0001")]
    assert actions[:2] == ["BootNotification", "StatusNotification"]
    assert "TransactionEvent" in actions


async def test_a_simulated_charge_point_whose_connection_drops_in_a_start_reconnects_idle_and_charges_later() -> None:
    drops: list[str] = []

    async def csms_that_drops_the_first_start(connection: ServerConnection) -> None:
        async for message in connection:
            unique_id, action = orjson.loads(message)[1:3]
            if action == "StartTransaction" and not drops:
                drops.append(unique_id)
                await connection.close()
                return
            await connection.send(orjson.dumps([3, unique_id, CSMS_ANSWERS[action]]).decode())

    async with serve(csms_that_drops_the_first_start, "127.0.0.1", 0, subprotocols=[Subprotocol("ocpp1.6")]) as server:
        url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/ocpp/"
        fleet = Fleet(FleetOptions(url=url, charge_points=1, versions=("1.6",), behaviour=BUSY))
        async with running(fleet):
            await eventually(lambda: fleet.tally.sessions_stopped >= 1)

    assert drops
    assert fleet.tally.connections >= 2


async def test_simulated_charge_points_answer_the_csmss_configuration_and_reservation_calls_through_the_tap(
    runtime: Runtime, csms: tuple[DevCsms, int], start_tap: TapStarter, running_taps: list[Any]
) -> None:
    dev_csms, port = csms
    tap = await start_tap(f"ws://127.0.0.1:{port}/ocpp/")
    quiet = Behaviour(meter_interval_s=0.05, start_chance=0.0, fault_chance=0.0, security_event_chance=0.0,
                      data_transfer_chance=0.0, disconnect_chance=0.0)  # fmt: skip
    fleet = Fleet(FleetOptions(url=tap, charge_points=2, versions=("1.6", "2.0.1"), behaviour=quiet))
    calls = [
        ("SIM-0001", "GetConfiguration", {"key": ["HeartbeatInterval", "Colour"]}),
        ("SIM-0001", "ChangeConfiguration", {"key": "HeartbeatInterval", "value": "60"}),
        ("SIM-0001", "GetConfiguration", {}),
        ("SIM-0001", "ReserveNow", {"connectorId": 1, "expiryDate": "2026-12-05T11:00:00Z", "idTag": "T",
                                    "reservationId": 31}),
        ("SIM-0001", "CancelReservation", {"reservationId": 31}),
        ("SIM-0002", "ReserveNow", {"id": 32, "expiryDateTime": "2026-12-05T11:00:00Z",
                                    "idToken": {"idToken": "T", "type": "ISO14443"}}),
    ]  # fmt: skip
    async with running(fleet):
        await eventually(lambda: {"SIM-0001", "SIM-0002"} <= set(dev_csms.connections) and fleet.tally.calls >= 4)
        for number, (identity, action, payload) in enumerate(calls):
            await dev_csms.send(identity, orjson.dumps([2, f"csms-{number}", action, payload]).decode())
            await eventually(partial(answered, dev_csms, identity, f"csms-{number}"))
    await stop_taps(running_taps)

    answers = [orjson.loads(frame) for identity in ("SIM-0001", "SIM-0002") for frame in dev_csms.frames_from(identity)]
    assert all(answer[0] == 3 for answer in answers if str(answer[1]).startswith("csms-"))
    events = await published(runtime.database)
    configurations = [event["configuration"] for event in named(events, "ChargePointSyncConfigurationNotification")]
    assert configurations[0] == [{"key": "HeartbeatInterval", "readonly": False, "value": "300"}]
    assert {"key": "HeartbeatInterval", "readonly": False, "value": "60"} in configurations[1]
    reservations = [(event["reservationId"], event["status"]) for event in named(events, "reservation.changed")]
    assert reservations == [(31, "active"), (31, "canceled"), (32, "active")]
