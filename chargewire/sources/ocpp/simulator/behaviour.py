"""What a simulated charge point does in each meter interval: pure decisions and meter physics, no I/O.

Each connector is idle, charging or faulted. Per interval an idle connector may start a session or fault, a
charging one reports meter values or stops (always once the car is full), a faulted one recovers. The station
as a whole may also raise a security event, send a vendor data transfer or drop its connection. Chances are
per interval, so `meter_interval_s` sets the rate of everything. `speedup` makes the meters run faster than
the wall clock (timestamps stay the wall clock's), so a short interval still shows sessions of realistic size.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum

ID_TAGS = ("04A2B3C4D5E6F7", "0455AA12BC3490", "04F1E2D3C4B5A6", "0412345678ABCD")
VENDORS = (("ABB", "Terra AC W22"), ("Alpitronic", "HYC300"), ("Wallbox", "Copper SB"), ("Kempower", "S-Series"))
# From the security event table of OCPP 1.6 security / 2.0.1 (the first two are critical there).
SECURITY_EVENTS = ("TamperDetectionActivated", "FailedToAuthenticateAtCsms", "SettingSystemTime", "ResetOrReboot")
STOP_REASONS = ("Local", "EVDisconnected", "Remote")
FAULTS = ("GroundFailure", "HighTemperature", "OverCurrentFailure", "PowerMeterFailure")
# Each reading's samples: the OCPP measurand, the unit of the `Reading` field, the field.
MEASURANDS = (
    ("Energy.Active.Import.Register", "Wh", "energy_wh"),
    ("Power.Active.Import", "W", "power_w"),
    ("Current.Import", "A", "current_a"),
    ("Voltage", "V", "voltage_v"),
    ("SoC", "Percent", "soc_percent"),
)
_GRID_VOLTAGE_V = 230.0
_BATTERY_WH = 60_000.0


class Move(Enum):
    """What one connector does in one meter interval."""

    WAIT = "wait"
    START = "start"
    METER = "meter"
    STOP = "stop"
    FAULT = "fault"
    RECOVER = "recover"


class StationMove(Enum):
    """What the station as a whole does in one meter interval, beside its connectors."""

    SECURITY_EVENT = "security_event"
    DATA_TRANSFER = "data_transfer"
    DISCONNECT = "disconnect"


@dataclass(frozen=True)
class Behaviour:
    """How often things happen, per meter interval (chances between 0 and 1)."""

    meter_interval_s: float = 10.0
    speedup: float = 1.0
    connectors: int = 2
    start_chance: float = 0.3
    stop_chance: float = 0.05
    fault_chance: float = 0.005
    security_event_chance: float = 0.002
    data_transfer_chance: float = 0.01
    disconnect_chance: float = 0.001
    reconnect_delay_s: float = 2.0
    heartbeat_interval_s: float | None = None


@dataclass
class Connector:
    """One connector's state: whether it charges or is faulted, and its meter."""

    number: int
    meter_wh: float
    charging: bool = False
    faulted: bool = False
    id_tag: str = ""
    soc_percent: float = 0.0
    power_w: float = 0.0
    session_start_wh: float = 0.0

    def begin(self, rng: random.Random) -> None:
        """A car plugs in: a new id tag, a starting state of charge and a charging power (charging once started)."""
        self.id_tag = rng.choice(ID_TAGS)
        self.soc_percent = rng.uniform(10, 50)
        self.power_w = rng.choice((7_400.0, 11_000.0, 22_000.0))
        self.session_start_wh = self.meter_wh

    def advance(self, seconds: float, rng: random.Random) -> None:
        """Charge for `seconds`: the register and the state of charge rise with the power drawn."""
        energy_wh = self.power_w * seconds / 3600 * rng.uniform(0.9, 1.05)
        self.meter_wh += energy_wh
        self.soc_percent = min(100.0, self.soc_percent + energy_wh / _BATTERY_WH * 100)

    def reading(self, moment: datetime) -> Reading:
        """What the connector's meter shows now."""
        power_w = self.power_w if self.charging else 0.0
        return Reading(
            timestamp=iso(moment),
            energy_wh=round(self.meter_wh),
            power_w=round(power_w, 1),
            current_a=round(power_w / _GRID_VOLTAGE_V / 3, 1),
            voltage_v=_GRID_VOLTAGE_V,
            soc_percent=round(self.soc_percent, 1),
        )


@dataclass(frozen=True)
class Reading:
    """One meter sample, in the units charge points send (Wh, W, A, V, percent)."""

    timestamp: str
    energy_wh: int
    power_w: float
    current_a: float
    voltage_v: float
    soc_percent: float


def iso(moment: datetime) -> str:
    """RFC 3339 in UTC with a `Z`, as charge points write their timestamps."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def connector_move(connector: Connector, behaviour: Behaviour, rng: random.Random) -> Move:
    """What `connector` does in this interval."""
    if connector.faulted:
        return Move.RECOVER
    if connector.charging:
        if connector.soc_percent >= 100.0 or rng.random() < behaviour.stop_chance:
            return Move.STOP
        return Move.METER
    if rng.random() < behaviour.fault_chance:
        return Move.FAULT
    if rng.random() < behaviour.start_chance:
        return Move.START
    return Move.WAIT


def station_moves(behaviour: Behaviour, rng: random.Random) -> list[StationMove]:
    """The station-wide things that happen in this interval, in the order they happen."""
    chances = (
        (StationMove.SECURITY_EVENT, behaviour.security_event_chance),
        (StationMove.DATA_TRANSFER, behaviour.data_transfer_chance),
        (StationMove.DISCONNECT, behaviour.disconnect_chance),
    )
    return [move for move, chance in chances if rng.random() < chance]
