"""OCPP 2.0.1: which completed exchanges cause which events, and how their fields map.

A transaction is the charge point's: its string id is the `externalSessionId`, its meter start and stop
are the Transaction.Begin and Transaction.End energy readings of its TransactionEvents.
"""

from __future__ import annotations

from typing import Any

from chargewire.sources.ocpp.derivation import (
    Context,
    Handler,
    Payload,
    authorization_changed,
    boot_notification,
    cancel_reservation,
    data_transfer,
    reservation_answered,
    reservation_changed,
    reservation_used,
    security_event,
    session_meter_values,
    session_start_stop,
    session_update,
    stopped,
)
from chargewire.sources.ocpp.mapping import (
    diagnostics_status,
    hardware_status,
    meter_value,
    now,
    timestamp,
)
from chargewire.sources.ocpp.registry import Session


async def _boot(context: Context, call: Payload, result: Payload) -> list[Payload]:
    station = call["chargingStation"]
    modem = station.get("modem", {})
    boot = {
        "vendor": station["vendorName"],
        "model": station["model"],
        "charge_box_serial_number": None,
        "charge_point_serial_number": station.get("serialNumber"),
        "firmware_version": station.get("firmwareVersion"),
        "iccid": modem.get("iccid"),
        "imsi": modem.get("imsi"),
        "meter_serial_number": None,
        "meter_type": None,
        "reason": call["reason"],
    }
    return boot_notification(context, boot, result)


async def _hardware_status(
    context: Context, evse: int, status: str, moment: object, error: Payload | None = None
) -> list[Payload]:
    payload: Payload = {
        "notification": "HardwareStatusNotification",
        "chargePointId": context.charge_point_id,
        "timestamp": timestamp(moment),
        "hardwareStatus": hardware_status(status),
        **(error or {}),
    }
    if evse > 0:
        payload["evseId"] = await context.registry.evse_id(context.charge_point_id, evse)
    return [payload]


async def _status(context: Context, call: Payload, result: Payload) -> list[Payload]:
    return await _hardware_status(context, call["evseId"], call["connectorStatus"], call["timestamp"])


def samples(meter_values: list[dict[str, Any]]) -> list[Payload]:
    """The catalog's meter values for 2.0.1 `meterValue` entries: phase totals only, with unit multipliers."""
    mapped: list[Payload] = []
    for meter in meter_values:
        moment = timestamp(meter["timestamp"])
        for sampled in meter["sampledValue"]:
            if "phase" in sampled:
                continue
            unit = sampled.get("unitOfMeasure", {})
            value = sampled["value"] * 10 ** unit.get("multiplier", 0)
            sample = meter_value(sampled.get("measurand"), unit.get("unit"), value)
            if sample is not None:
                mapped.append({"timestamp": moment, **sample})
    return mapped


def _energy_reading(call: Payload, reading_context: str) -> int | None:
    """The energy register in Wh at `reading_context` (Transaction.Begin or .End), if the event carries it."""
    for meter in call.get("meterValue", []):
        readings = [sampled for sampled in meter["sampledValue"] if sampled.get("context") == reading_context]
        for sample in samples([{"timestamp": meter["timestamp"], "sampledValue": readings}]):
            if sample["measurand"] == "Energy Active Import Register":
                return round(float(sample["value"]))
    return None


async def _started(context: Context, call: Payload, transaction_key: str, id_tag: str | None) -> Session | None:
    evse = call.get("evse")
    if evse is None:
        return None
    evse_id = await context.registry.evse_id(context.charge_point_id, evse["id"])
    meter_start = _energy_reading(call, "Transaction.Begin") or 0
    return await context.registry.start_session(
        context.charge_point_id, evse_id, transaction_key, id_tag, timestamp(call["timestamp"]), meter_start
    )


async def _transaction_event(context: Context, call: Payload, result: Payload) -> list[Payload]:
    info = call["transactionInfo"]
    transaction_key = info["transactionId"]
    id_tag = call["idToken"]["idToken"] if "idToken" in call else None
    events: list[Payload] = []
    if id_tag is not None and "idTokenInfo" in result:
        events.append(await authorization_changed(context, id_tag, result["idTokenInfo"]["status"]))
    if call["eventType"] == "Started":
        started = await _started(context, call, transaction_key, id_tag)
        if started is not None:
            events += [session_start_stop(context, started), session_update(context, started)]
            events += reservation_used(call)
    if "chargingState" in info and "evse" in call:
        events += await _hardware_status(context, call["evse"]["id"], info["chargingState"], call["timestamp"])
    session = await context.registry.session(context.charge_point_id, transaction_key)
    if session is None or session.stopped:
        return events
    events += session_meter_values(context, session, samples(call.get("meterValue", [])))
    if call["eventType"] == "Ended":
        meter_stop = _energy_reading(call, "Transaction.End")
        if meter_stop is None:
            meter_stop = round(session.energy_wh) if session.energy_wh is not None else session.meter_start
        stop = {"meterStop": meter_stop, "timestamp": call["timestamp"], "reason": info.get("stoppedReason")}
        events += await stopped(context, session, stop)
    return events


# NotifyEvent's error fields, and the HardwareStatusNotification fields they fill.
_ERROR_FIELDS = (("techCode", "errorCode"), ("techInfo", "info"))


def _reported_status(event: Payload) -> str | None:
    """The connector status a NotifyEvent entry reports: its AvailabilityState, or Faulted for a raised Problem."""
    variable, value = event["variable"]["name"], event["actualValue"]
    if variable == "AvailabilityState" and hardware_status(value) is not None:
        return str(value)
    if variable == "Problem" and value.lower() == "true" and not event.get("cleared", False):
        return "Faulted"
    return None


async def _notify_event(context: Context, call: Payload, result: Payload) -> list[Payload]:
    """HardwareStatusNotification for each entry that reports a status; `techCode` and `techInfo` are its error."""
    events: list[Payload] = []
    for event in call["eventData"]:
        status = _reported_status(event)
        if status is None:
            continue
        error = {name: event[field] for field, name in _ERROR_FIELDS if field in event}
        evse = event["component"].get("evse", {}).get("id", 0)
        events += await _hardware_status(context, evse, status, event["timestamp"], error)
    return events


async def _reserve_now(context: Context, call: Payload, result: Payload) -> list[Payload]:
    return reservation_answered(call, result, "id", "active")


async def _reservation_status_update(context: Context, call: Payload, result: Payload) -> list[Payload]:
    status = "expired" if call["reservationUpdateStatus"] == "Expired" else "canceled"
    return [reservation_changed(call["reservationId"], status)]


async def _authorize(context: Context, call: Payload, result: Payload) -> list[Payload]:
    return [await authorization_changed(context, call["idToken"]["idToken"], result["idTokenInfo"]["status"])]


async def _data_transfer(context: Context, call: Payload, result: Payload) -> list[Payload]:
    return data_transfer(context, call)


async def _security_event(context: Context, call: Payload, result: Payload) -> list[Payload]:
    return security_event(context, call)


async def _log_status(context: Context, call: Payload, result: Payload) -> list[Payload]:
    return [
        {
            "notification": "DiagnosticsStatusNotification",
            "chargePointId": context.charge_point_id,
            "requestId": call.get("requestId", 0),
            "status": diagnostics_status(call["status"]),
            "lastUpdatedAt": now(),
        }
    ]


CHARGE_POINT_CALLS: dict[str, Handler] = {
    "BootNotification": _boot,
    "StatusNotification": _status,
    "TransactionEvent": _transaction_event,
    "Authorize": _authorize,
    "DataTransfer": _data_transfer,
    "SecurityEventNotification": _security_event,
    "LogStatusNotification": _log_status,
    "NotifyEvent": _notify_event,
    "ReservationStatusUpdate": _reservation_status_update,
}
CSMS_CALLS: dict[str, Handler] = {
    "ReserveNow": _reserve_now,
    "CancelReservation": cancel_reservation,
}
