"""OCPP 1.6J: which completed exchanges cause which events, and how their fields map."""

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
    reservation_used,
    security_event,
    session_meter_values,
    session_start_stop,
    session_update,
    stopped,
)
from chargewire.sources.ocpp.mapping import diagnostics_status, hardware_status, meter_value, now, timestamp, verdict

DIAGNOSTICS = "diagnostics"


async def _boot(context: Context, call: Payload, result: Payload) -> list[Payload]:
    boot = {
        "vendor": call["chargePointVendor"],
        "model": call["chargePointModel"],
        "charge_box_serial_number": call.get("chargeBoxSerialNumber"),
        "charge_point_serial_number": call.get("chargePointSerialNumber"),
        "firmware_version": call.get("firmwareVersion"),
        "iccid": call.get("iccid"),
        "imsi": call.get("imsi"),
        "meter_serial_number": call.get("meterSerialNumber"),
        "meter_type": call.get("meterType"),
        "reason": None,
    }
    return boot_notification(context, boot, result)


async def _status(context: Context, call: Payload, result: Payload) -> list[Payload]:
    status = hardware_status(call["status"])
    payload: Payload = {
        "notification": "HardwareStatusNotification",
        "chargePointId": context.charge_point_id,
        "timestamp": timestamp(call.get("timestamp")),
        "hardwareStatus": status,
        "errorCode": call["errorCode"],
    }
    for field in ("info", "vendorId", "vendorErrorCode"):
        if field in call:
            payload[field] = call[field]
    # Connector 0 is the charge point as a whole: no EVSE.
    if call["connectorId"] > 0:
        payload["evseId"] = await context.registry.evse_id(context.charge_point_id, call["connectorId"])
    return [payload]


def samples(meter_values: list[dict[str, Any]]) -> list[Payload]:
    """The catalog's meter values for 1.6 `meterValue` entries: phase totals only, signed data left out."""
    mapped: list[Payload] = []
    for meter in meter_values:
        moment = timestamp(meter["timestamp"])
        for sampled in meter["sampledValue"]:
            if "phase" in sampled or sampled.get("format") == "SignedData":
                continue
            try:
                value = float(sampled["value"])
            except ValueError:
                continue
            sample = meter_value(sampled.get("measurand"), sampled.get("unit"), value)
            if sample is not None:
                mapped.append({"timestamp": moment, **sample})
    return mapped


async def _meter_values(context: Context, call: Payload, result: Payload) -> list[Payload]:
    if "transactionId" not in call:
        return []
    session = await context.registry.session(context.charge_point_id, str(call["transactionId"]))
    if session is None or session.stopped:
        return []
    return session_meter_values(context, session, samples(call["meterValue"]))


async def _start(context: Context, call: Payload, result: Payload) -> list[Payload]:
    registry = context.registry
    events = [await authorization_changed(context, call["idTag"], result["idTagInfo"]["status"])]
    evse_id = await registry.evse_id(context.charge_point_id, call["connectorId"])
    session = await registry.start_session(
        context.charge_point_id,
        evse_id,
        str(result["transactionId"]),
        call["idTag"],
        timestamp(call["timestamp"]),
        call["meterStart"],
    )
    if session is not None:
        events += [session_start_stop(context, session), session_update(context, session)]
        if verdict(result["idTagInfo"]["status"]) == "accepted":
            events += reservation_used(call)
    return events


async def _stop(context: Context, call: Payload, result: Payload) -> list[Payload]:
    session = await context.registry.session(context.charge_point_id, str(call["transactionId"]))
    if session is None or session.stopped:
        return []
    events = session_meter_values(context, session, samples(call.get("transactionData", [])))
    return events + await stopped(context, session, call)


async def _authorize(context: Context, call: Payload, result: Payload) -> list[Payload]:
    return [await authorization_changed(context, call["idTag"], result["idTagInfo"]["status"])]


async def _data_transfer(context: Context, call: Payload, result: Payload) -> list[Payload]:
    return data_transfer(context, call)


async def _security_event(context: Context, call: Payload, result: Payload) -> list[Payload]:
    return security_event(context, call)


async def _diagnostics_status(context: Context, call: Payload, result: Payload) -> list[Payload]:
    # The 1.6 message has no request id: it answers the latest GetDiagnostics the tap saw.
    request_id = await context.registry.current_number(context.charge_point_id, DIAGNOSTICS)
    return [
        {
            "notification": "DiagnosticsStatusNotification",
            "chargePointId": context.charge_point_id,
            "requestId": request_id,
            "status": diagnostics_status(call["status"]),
            "lastUpdatedAt": now(),
        }
    ]


async def _get_diagnostics(context: Context, call: Payload, result: Payload) -> list[Payload]:
    await context.registry.next_number(context.charge_point_id, DIAGNOSTICS)
    return []


async def _get_configuration(context: Context, call: Payload, result: Payload) -> list[Payload]:
    configuration = [
        {key: entry[key] for key in ("key", "value", "readonly") if key in entry}
        for entry in result.get("configurationKey", [])
    ]
    return [
        {
            "notification": "ChargePointSyncConfigurationNotification",
            "chargePointId": context.charge_point_id,
            "configuration": configuration,
        }
    ]


async def _reserve_now(context: Context, call: Payload, result: Payload) -> list[Payload]:
    # 1.6 does not say when a reservation expires unused: its expiryDate passing is not published.
    return reservation_answered(call, result, "reservationId", "active")


CHARGE_POINT_CALLS: dict[str, Handler] = {
    "BootNotification": _boot,
    "StatusNotification": _status,
    "MeterValues": _meter_values,
    "StartTransaction": _start,
    "StopTransaction": _stop,
    "Authorize": _authorize,
    "DataTransfer": _data_transfer,
    "SecurityEventNotification": _security_event,
    "DiagnosticsStatusNotification": _diagnostics_status,
}
CSMS_CALLS: dict[str, Handler] = {
    "GetDiagnostics": _get_diagnostics,
    "GetConfiguration": _get_configuration,
    "ReserveNow": _reserve_now,
    "CancelReservation": cancel_reservation,
}
