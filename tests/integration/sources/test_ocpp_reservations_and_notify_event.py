"""Reservations (1.6 and 2.0.1) and 2.0.1 NotifyEvent hardware statuses, derived by a real tap from real traffic."""

from __future__ import annotations

from typing import Any

import orjson

from chargewire.devtools.csms import DevCsms
from chargewire.runtime import Runtime
from tests.integration.sources.conftest import TapStarter, through_tap
from tests.integration.sources.test_ocpp_events import T0, T1, boot_16, events_named
from tests.support.ocpp import ChargePoint

BOOT_201 = {"reason": "PowerUp", "chargingStation": {"model": "S-Series", "vendorName": "Kempower"}}


class FromCsms:
    """Calls from the dev CSMS to one charge point, which answers each with a status."""

    def __init__(self, dev_csms: DevCsms, charge_point: ChargePoint, identity: str) -> None:
        self.dev_csms, self.charge_point, self.identity = dev_csms, charge_point, identity

    async def call(self, action: str, payload: dict[str, Any], answer: str) -> None:
        """The CSMS sends `action`; the charge point answers `{"status": answer}`."""
        unique_id = f"{action}-{len(self.charge_point.received)}"
        await self.dev_csms.send(self.identity, orjson.dumps([2, unique_id, action, payload]).decode())
        await self.charge_point.receive()
        await self.charge_point.send(orjson.dumps([3, unique_id, {"status": answer}]).decode())

    async def reserve(self, payload: dict[str, Any], answer: str) -> None:
        """ReserveNow, answered `answer`."""
        await self.call("ReserveNow", payload, answer)

    async def cancel(self, reservation_id: int, answer: str) -> None:
        """CancelReservation, answered `answer`."""
        await self.call("CancelReservation", {"reservationId": reservation_id}, answer)


def statuses(events: list[dict[str, Any]]) -> list[tuple[int, str]]:
    return [(event["reservationId"], event["status"]) for event in events]


async def test_ocpp16_reservation_is_active_when_accepted_canceled_when_canceled_and_done_when_a_session_uses_it(
    runtime: Runtime, csms: tuple[DevCsms, int], start_tap: TapStarter
) -> None:
    dev_csms, charge_point, _ = await through_tap(csms, start_tap, "CP16-R")
    from_csms = FromCsms(dev_csms, charge_point, "CP16-R")
    await boot_16(charge_point)

    def reservation(reservation_id: int) -> dict[str, Any]:
        return {"connectorId": 1, "expiryDate": T1, "idTag": "TAG-1", "reservationId": reservation_id}

    await from_csms.reserve(reservation(7), "Accepted")
    await from_csms.reserve(reservation(8), "Occupied")
    await from_csms.reserve(reservation(9), "Accepted")
    await from_csms.cancel(9, "Accepted")
    await from_csms.cancel(10, "Rejected")
    await charge_point.call(
        "StartTransaction", {"connectorId": 1, "idTag": "TAG-1", "meterStart": 0, "timestamp": T0, "reservationId": 7}
    )

    changed = await events_named(runtime, "reservation.changed", 4)
    assert statuses(changed) == [(7, "active"), (9, "active"), (9, "canceled"), (7, "done")]


async def test_ocpp201_reservation_follows_reserve_now_status_updates_cancel_and_the_transaction_that_uses_it(
    runtime: Runtime, csms: tuple[DevCsms, int], start_tap: TapStarter
) -> None:
    dev_csms, charge_point, _ = await through_tap(csms, start_tap, "CS201-R", subprotocols=("ocpp2.0.1",))
    from_csms = FromCsms(dev_csms, charge_point, "CS201-R")
    await charge_point.call("BootNotification", BOOT_201)
    token = {"idToken": "TOKEN-201", "type": "ISO14443"}

    await from_csms.reserve({"id": 21, "expiryDateTime": T1, "idToken": token}, "Accepted")
    await charge_point.call("ReservationStatusUpdate", {"reservationId": 21, "reservationUpdateStatus": "Expired"})
    await from_csms.reserve({"id": 22, "expiryDateTime": T1, "idToken": token}, "Rejected")
    await from_csms.reserve({"id": 23, "expiryDateTime": T1, "idToken": token}, "Accepted")
    await charge_point.call("ReservationStatusUpdate", {"reservationId": 23, "reservationUpdateStatus": "Removed"})
    await from_csms.reserve({"id": 24, "expiryDateTime": T1, "idToken": token}, "Accepted")
    await from_csms.cancel(24, "Accepted")
    await from_csms.reserve({"id": 25, "expiryDateTime": T1, "idToken": token}, "Accepted")
    await charge_point.call(
        "TransactionEvent",
        {
            "eventType": "Started",
            "timestamp": T0,
            "triggerReason": "Authorized",
            "seqNo": 0,
            "transactionInfo": {"transactionId": "tx-r"},
            "evse": {"id": 1, "connectorId": 1},
            "idToken": token,
            "reservationId": 25,
        },
    )

    changed = await events_named(runtime, "reservation.changed", 8)
    assert statuses(changed) == [
        (21, "active"),
        (21, "expired"),
        (23, "active"),
        (23, "canceled"),
        (24, "active"),
        (24, "canceled"),
        (25, "active"),
        (25, "done"),
    ]


async def test_ocpp201_notify_event_publishes_hardware_statuses_with_their_error_codes(
    runtime: Runtime, csms: tuple[DevCsms, int], start_tap: TapStarter
) -> None:
    _, charge_point, _ = await through_tap(csms, start_tap, "CS201-N", subprotocols=("ocpp2.0.1",))
    await charge_point.call("BootNotification", BOOT_201)

    def event(event_id: int, component: dict[str, Any], variable: str, value: str, **extra: Any) -> dict[str, Any]:
        return {
            "eventId": event_id,
            "timestamp": T0,
            "trigger": "Delta",
            "actualValue": value,
            "eventNotificationType": "HardWiredNotification",
            "component": component,
            "variable": {"name": variable},
            **extra,
        }

    connector = {"name": "Connector", "evse": {"id": 1, "connectorId": 1}}
    evse = {"name": "EVSE", "evse": {"id": 2}}
    station = {"name": "ChargingStation"}
    answer = await charge_point.call(
        "NotifyEvent",
        {
            "generatedAt": T0,
            "seqNo": 0,
            "eventData": [
                event(1, connector, "AvailabilityState", "Faulted", techCode="E42", techInfo="relay stuck"),
                event(2, evse, "Problem", "true", techCode="GroundFailure"),
                event(3, evse, "Problem", "false", cleared=True),
                event(4, station, "Temperature", "41.5", trigger="Periodic"),
                event(5, station, "AvailabilityState", "Unavailable"),
            ],
        },
    )
    assert answer[0] == 3

    faulted, problem, unavailable = await events_named(runtime, "HardwareStatusNotification", 3)
    assert faulted == {
        **faulted,
        "hardwareStatus": "faulted",
        "errorCode": "E42",
        "info": "relay stuck",
        "timestamp": "2025-03-01T10:00:00.000Z",
    }
    assert problem == {**problem, "hardwareStatus": "faulted", "errorCode": "GroundFailure"}
    assert "info" not in problem
    assert faulted["evseId"] != problem["evseId"]
    assert unavailable == {**unavailable, "hardwareStatus": "unavailable"}
    assert "evseId" not in unavailable
    assert "errorCode" not in unavailable
