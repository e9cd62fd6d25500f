"""Simulated charge points: a realistic stream of events for the demo and for load tests.

Each charge point boots, comes online, and then runs sessions on its EVSEs: status changes, a session
start, meter values every interval with rising energy and state of charge, session updates, and a stop.
The payloads follow the catalog's schemas (a test validates thousands of them).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

_VENDORS = (
    ("ABB", "Terra AC W22-T-RD-M-0"),
    ("Alpitronic", "HYC300"),
    ("Wallbox", "Copper SB"),
    ("Kempower", "S-Series"),
)
_ID_TAGS = ("04A2B3C4D5E6F7", "0455AA12BC3490", "04F1E2D3C4B5A6", "0412345678ABCD")


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass
class _Session:
    id: int
    evse_id: int
    user_id: int
    id_tag: str
    started_at: datetime
    meter_start_wh: int
    energy_wh: float = 0.0
    soc_percent: float = 20.0
    power_kw: float = 11.0


@dataclass
class SimulatedChargePoint:
    """One charge point with two EVSEs, advancing in simulated time."""

    charge_point_id: int
    rng: random.Random
    evse_count: int = 2
    meter_wh: int = 1_250_000
    sessions: dict[int, _Session] = field(default_factory=dict)
    booted: bool = False

    def boot(self, now: datetime) -> Iterator[dict[str, Any]]:
        """BootNotification, network available, and each EVSE available."""
        vendor, model = self.rng.choice(_VENDORS)
        self.booted = True
        yield {
            "notification": "BootNotification",
            "chargePointId": self.charge_point_id,
            "timestamp": _iso(now),
            "bootNotification": {
                "vendor": vendor,
                "model": model,
                "charge_point_serial_number": f"SN-{self.charge_point_id:06d}",
                "charge_box_serial_number": f"CB-{self.charge_point_id:06d}",
                "firmware_version": "1.8.3",
                "iccid": None,
                "imsi": None,
                "meter_serial_number": f"MTR-{self.charge_point_id:06d}",
                "meter_type": "Eastron SDM630",
                "reason": "PowerUp",
            },
        }
        yield {
            "notification": "NetworkStatusNotification",
            "chargePointId": self.charge_point_id,
            "timestamp": _iso(now),
            "networkStatus": "available",
        }
        for evse_id in range(1, self.evse_count + 1):
            yield self._status(evse_id, "available", now)

    def _status(self, evse_id: int, status: str, now: datetime) -> dict[str, Any]:
        return {
            "notification": "HardwareStatusNotification",
            "chargePointId": self.charge_point_id,
            "evseId": evse_id,
            "timestamp": _iso(now),
            "hardwareStatus": status,
            "errorCode": "noError",
        }

    def tick(self, now: datetime, session_ids: Iterator[int]) -> Iterator[dict[str, Any]]:
        """What happens in one meter interval: sessions start, report meter values, or stop."""
        if not self.booted:
            yield from self.boot(now)
            return
        for evse_id in range(1, self.evse_count + 1):
            session = self.sessions.get(evse_id)
            if session is None:
                if self.rng.random() < 0.3:
                    yield from self._start(evse_id, next(session_ids), now)
            elif session.soc_percent >= 80 or self.rng.random() < 0.05:
                yield from self._stop(session, now)
            else:
                yield from self._meter(session, now)

    def _start(self, evse_id: int, session_id: int, now: datetime) -> Iterator[dict[str, Any]]:
        session = _Session(
            id=session_id,
            evse_id=evse_id,
            user_id=self.rng.randint(1000, 9999),
            id_tag=self.rng.choice(_ID_TAGS),
            started_at=now,
            meter_start_wh=self.meter_wh,
            soc_percent=self.rng.uniform(10, 40),
            power_kw=self.rng.choice((7.4, 11.0, 22.0)),
        )
        self.sessions[evse_id] = session
        yield self._status(evse_id, "preparing", now)
        yield self._start_stop(session, "start", now)
        yield self._status(evse_id, "charging", now)
        yield self._update(session, "active", now)

    def _meter(self, session: _Session, now: datetime) -> Iterator[dict[str, Any]]:
        step_wh = session.power_kw * 1000 / 60 * self.rng.uniform(0.9, 1.05)
        session.energy_wh += step_wh
        session.soc_percent = min(100.0, session.soc_percent + step_wh / 600)
        self.meter_wh += int(step_wh)
        yield {
            "notification": "SessionMeterValuesNotification",
            "chargePointId": self.charge_point_id,
            "evseId": session.evse_id,
            "sessionId": session.id,
            "meterValues": [
                {
                    "timestamp": _iso(now),
                    "measurand": "Energy Active Import Register",
                    "value": self.meter_wh,
                    "unit": "Wh",
                },
                {
                    "timestamp": _iso(now),
                    "measurand": "Current Import",
                    "value": round(session.power_kw * 1000 / 690, 1),
                    "unit": "A",
                },
                {
                    "timestamp": _iso(now),
                    "measurand": "State Of Charge",
                    "value": round(session.soc_percent, 1),
                    "unit": "Percent",
                },
            ],
        }
        if self.rng.random() < 0.2:
            yield self._update(session, "active", now)

    def _stop(self, session: _Session, now: datetime) -> Iterator[dict[str, Any]]:
        del self.sessions[session.evse_id]
        yield self._start_stop(session, "stop", now)
        yield self._status(session.evse_id, "finishing", now)
        yield self._update(session, "finished", now)
        yield self._status(session.evse_id, "available", now)

    def _start_stop(self, session: _Session, action: str, now: datetime) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "notification": "SessionStartStopNotification",
            "chargePointId": self.charge_point_id,
            "evseId": session.evse_id,
            "action": action,
            "sessionId": session.id,
            "idTag": session.id_tag,
            "userId": session.user_id,
            "startedAtTimestamp": _iso(session.started_at),
            "meterStart": session.meter_start_wh,
            "meterStop": self.meter_wh if action == "stop" else session.meter_start_wh,
            "lastUpdatedAt": _iso(now),
        }
        if action == "stop":
            payload |= {
                "stoppedAtTimestamp": _iso(now),
                "energyConsumed": round(session.energy_wh, 1),
                "reason": "local",
            }
        return payload

    def _update(self, session: _Session, status: str, now: datetime) -> dict[str, Any]:
        energy_kwh = session.energy_wh / 1000
        update: dict[str, Any] = {
            "id": str(session.id),
            "chargePointId": self.charge_point_id,
            "evseId": session.evse_id,
            "connectorId": 1,
            "status": status,
            "userId": session.user_id,
            "startedAt": _iso(session.started_at),
            "energy": round(session.energy_wh, 1),
            "powerKw": session.power_kw if status == "active" else 0.0,
            "socPercent": round(session.soc_percent, 1),
            "amount": round(energy_kwh * 0.49, 2),
            "totalAmount": {"withTax": round(energy_kwh * 0.49, 2), "withoutTax": round(energy_kwh * 0.49 / 1.2, 2)},
            "currency": "EUR",
            "authorizationId": session.id * 10,
            "idTag": session.id_tag,
            "energyConsumption": {"total": round(session.energy_wh, 1), "grid": round(session.energy_wh, 1)},
            "billingStatus": "completed" if status == "finished" else "pending",
            "lastUpdatedAt": _iso(now),
        }
        if status == "finished":
            update["stoppedAt"] = _iso(now)
        return {"notification": "SessionUpdateNotification", "session": update}


class ChargingNetwork:
    """Many simulated charge points sharing one clock and one run of session ids."""

    def __init__(self, charge_points: int, *, seed: int = 7, first_id: int = 1001) -> None:
        self.rng = random.Random(seed)
        self.points = [
            SimulatedChargePoint(first_id + index, random.Random(seed + index)) for index in range(charge_points)
        ]
        self._session_ids = iter(range(500_000, 10**9))

    def events(self, start: datetime, interval: timedelta = timedelta(seconds=60)) -> Iterator[dict[str, Any]]:
        """An endless stream of payloads in simulated time, one meter interval after another."""
        now = start
        while True:
            yield from self._round(now)
            now += interval

    def live_events(self, clock: Callable[[], datetime]) -> Iterator[dict[str, Any]]:
        """An endless stream of payloads stamped with `clock`'s time when each round of meter intervals begins.

        For a live demo: simulated time would run a minute per round, an hour ahead of the wall clock after
        a minute of publishing.
        """
        while True:
            yield from self._round(clock())

    def _round(self, now: datetime) -> Iterator[dict[str, Any]]:
        for point in self.points:
            yield from point.tick(now, self._session_ids)
