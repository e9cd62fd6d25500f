"""From a completed exchange to the catalog events it causes: checks shared by both OCPP versions.

An exchange produces events only when the call and its result are valid against their OCPP schemas and
the CSMS answered with a CALLRESULT; each version's module maps the actions it knows. Payloads that both
versions build the same way (sessions, authorizations, security events, reservations) are made here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

import orjson

from chargewire.catalog import load_event_types
from chargewire.sources.ocpp.mapping import (
    CRITICAL_SECURITY_EVENTS,
    now,
    security_event_type,
    stop_reason,
    timestamp,
    verdict,
)
from chargewire.sources.ocpp.registry import Registry, Session

Payload = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Context:
    """What a mapping needs besides the frames: the registry and whose traffic it is."""

    registry: Registry
    charge_point_id: int


# A mapping of one action: (context, call payload, result payload) -> events.
Handler = Callable[[Context, Payload, Payload], Awaitable[list[Payload]]]


@cache
def _stop_reasons() -> frozenset[str]:
    schema = load_event_types()["SessionStartStopNotification"].schema
    return frozenset(schema["properties"]["reason"]["enum"])


def boot_notification(context: Context, boot: Payload, result: Payload) -> list[Payload]:
    """BootNotification; its time is the CSMS's answer's (a boot request carries none)."""
    return [
        {
            "notification": "BootNotification",
            "chargePointId": context.charge_point_id,
            "timestamp": timestamp(result["currentTime"]),
            "bootNotification": boot,
        }
    ]


async def authorization_changed(context: Context, id_tag: str, status: str) -> Payload:
    """`authorization.changed` with the CSMS's verdict on `id_tag`."""
    return {
        "notification": "authorization.changed",
        "authorizationId": await context.registry.next_number(0, "authorization"),
        "action": "created",
        "chargePointId": context.charge_point_id,
        "idTag": id_tag,
        "status": verdict(status),
        "lastUpdatedAt": now(),
    }


def security_event(context: Context, call: Payload) -> list[Payload]:
    """SecurityEventNotification, `critical` from the spec's table; nothing for a type the catalog lacks."""
    event_type = security_event_type(call["type"])
    if event_type is None:
        return []
    payload: Payload = {
        "notification": "SecurityEventNotification",
        "chargePointId": context.charge_point_id,
        "type": event_type,
        "timestamp": timestamp(call["timestamp"]),
        "critical": event_type in CRITICAL_SECURITY_EVENTS,
    }
    if "techInfo" in call:
        payload["techInfo"] = call["techInfo"]
    return [payload]


def data_transfer(context: Context, call: Payload) -> list[Payload]:
    """chargePoint.dataTransferReceived; 2.0.1's JSON `data` is sent as its JSON text."""
    payload: Payload = {
        "notification": "chargePoint.dataTransferReceived",
        "chargePointId": context.charge_point_id,
        "vendorId": call["vendorId"],
    }
    if "messageId" in call:
        payload["messageId"] = call["messageId"]
    if "data" in call:
        data = call["data"]
        payload["data"] = data if isinstance(data, str) else orjson.dumps(data).decode()
    return [payload]


def reservation_changed(reservation_id: int, status: str) -> Payload:
    """`reservation.changed`: the CSMS's reservation id (OCPP gives no other), in the catalog's status words."""
    return {
        "notification": "reservation.changed",
        "reservationId": reservation_id,
        "status": status,
        "lastUpdatedAt": now(),
    }


def reservation_answered(call: Payload, result: Payload, id_field: str, status: str) -> list[Payload]:
    """The reservation in `call[id_field]` is now `status`, if the charge point accepted the CSMS's call."""
    return [reservation_changed(call[id_field], status)] if result["status"] == "Accepted" else []


async def cancel_reservation(context: Context, call: Payload, result: Payload) -> list[Payload]:
    """CancelReservation (the same in 1.6 and 2.0.1): `canceled` once the charge point accepted."""
    return reservation_answered(call, result, "reservationId", "canceled")


def reservation_used(call: Payload) -> list[Payload]:
    """A transaction started on a reservation (`reservationId` in its start) makes that reservation `done`."""
    return [reservation_changed(call["reservationId"], "done")] if "reservationId" in call else []


def session_start_stop(context: Context, session: Session, stop: Payload | None = None) -> Payload:
    """SessionStartStopNotification for a start, or for a stop given `{meterStop, timestamp, reason}`."""
    meter_stop = session.meter_start if stop is None else int(stop["meterStop"])
    payload: Payload = {
        "notification": "SessionStartStopNotification",
        "chargePointId": context.charge_point_id,
        "evseId": session.evse_id,
        "action": "start" if stop is None else "stop",
        "sessionId": session.id,
        "externalSessionId": session.transaction_key,
        "startedAtTimestamp": session.started_at,
        "meterStart": session.meter_start,
        "meterStop": meter_stop,
        "energyConsumed": meter_stop - session.meter_start,
        "lastUpdatedAt": now(),
    }
    if session.id_tag is not None:
        payload["idTag"] = session.id_tag
    if stop is not None:
        payload["stoppedAtTimestamp"] = timestamp(stop["timestamp"])
        payload["reason"] = stop_reason(stop.get("reason"), _stop_reasons())
    return payload


def session_update(context: Context, session: Session, stopped_at: str | None = None) -> Payload:
    """SessionUpdateNotification: the tap's own record of the session, after its latest reading."""
    energy = (session.energy_wh - session.meter_start) if session.energy_wh is not None else 0.0
    record: Payload = {
        "id": str(session.id),
        "status": "active" if stopped_at is None else "finished",
        "userId": None,
        "authorizationId": None,
        "energy": energy,
        "energyConsumption": {"total": energy, "grid": energy},
        "chargePointId": context.charge_point_id,
        "evseId": session.evse_id,
        "startedAt": session.started_at,
        "stoppedAt": stopped_at,
        "billingStatus": None,
        "externalSessionId": session.transaction_key,
    }
    if session.id_tag is not None:
        record["idTag"] = session.id_tag
    if session.soc_percent is not None:
        record["socPercent"] = session.soc_percent
    return {"notification": "SessionUpdateNotification", "session": record}


def session_meter_values(context: Context, session: Session, samples: list[Payload]) -> list[Payload]:
    """SessionMeterValuesNotification for the mapped samples (none when nothing mapped), and the update."""
    if not samples:
        return []
    for sample in samples:
        if sample["measurand"] == "Energy Active Import Register":
            session.energy_wh = sample["value"]
        elif sample["measurand"] == "State Of Charge":
            session.soc_percent = sample["value"]
    meter_values = {
        "notification": "SessionMeterValuesNotification",
        "chargePointId": context.charge_point_id,
        "evseId": session.evse_id,
        "sessionId": session.id,
        "externalSessionId": session.transaction_key,
        "meterValues": samples,
    }
    return [meter_values, session_update(context, session)]


async def stopped(context: Context, session: Session, stop: Payload) -> list[Payload]:
    """The stop and the final session update, once per session however often the stop is repeated."""
    if not await context.registry.stop_session(context.charge_point_id, session):
        return []
    session.energy_wh = float(stop["meterStop"])
    ended = session_start_stop(context, session, stop)
    return [ended, session_update(context, session, stopped_at=ended["stoppedAtTimestamp"])]
