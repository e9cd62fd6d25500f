"""The simulated charge point's calls in OCPP 1.6J, through `ocpp.v16.ChargePoint`."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from ocpp.v16 import ChargePoint, call, call_result

from chargewire.sources.ocpp.simulator.behaviour import MEASURANDS, Reading
from chargewire.sources.ocpp.simulator.dialect import VersionCalls


def meter_value(reading: Reading, context: str = "Sample.Periodic") -> dict[str, Any]:
    """A 1.6 MeterValue of `reading`, energy in kWh as many meters send it."""
    sampled = []
    for measurand, unit, field in MEASURANDS:
        value = getattr(reading, field)
        text, sent_unit = (f"{value / 1000:.3f}", "kWh") if unit == "Wh" else (str(value), unit)
        sampled.append({"value": text, "measurand": measurand, "unit": sent_unit, "context": context})
    return {"timestamp": reading.timestamp, "sampled_value": sampled}


class Ocpp16(VersionCalls):
    """A charge point speaking OCPP 1.6J; the CSMS's transaction id per connector survives reconnects."""

    point_class = ChargePoint
    calls = call
    results = call_result
    subprotocol = "ocpp1.6"

    def __init__(self, identity: str, rng: random.Random) -> None:
        super().__init__(identity, rng)
        self.transactions: dict[int, int] = {}
        self.configuration = {"HeartbeatInterval": "300", "MeterValuesSampledData": "Energy.Active.Import.Register"}

    def answers(self) -> dict[str, Callable[..., Any]]:
        """Reservations, and GetConfiguration and ChangeConfiguration over a few keys (kept, not acted on)."""
        return super().answers() | {
            "GetConfiguration": self._get_configuration,
            "ChangeConfiguration": self._change_configuration,
        }

    def _get_configuration(self, key: list[str] | None = None, **_: Any) -> Any:
        asked = key or list(self.configuration)
        known = [
            {"key": name, "readonly": False, "value": self.configuration[name]}
            for name in asked
            if name in self.configuration
        ]
        unknown = [name for name in asked if name not in self.configuration]
        return call_result.GetConfiguration(configuration_key=known, unknown_key=unknown or None)

    def _change_configuration(self, key: str, value: str, **_: Any) -> Any:
        if key not in self.configuration:
            return call_result.ChangeConfiguration(status="NotSupported")
        self.configuration[key] = value
        return call_result.ChangeConfiguration(status="Accepted")

    async def boot(self) -> float | None:
        """BootNotification; the heartbeat interval when accepted."""
        result = await self._call(
            call.BootNotification(
                charge_point_model=self.model,
                charge_point_vendor=self.vendor,
                charge_point_serial_number=f"SN-{self.identity}",
                firmware_version="1.8.3",
                meter_type="Eastron SDM630",
            )
        )
        return float(result.interval) if result.status == "Accepted" else None

    async def status(self, connector: int, status: str, timestamp: str, error_code: str = "NoError") -> None:
        """StatusNotification."""
        await self._call(
            call.StatusNotification(connector_id=connector, error_code=error_code, status=status, timestamp=timestamp)
        )

    async def authorize(self, id_tag: str) -> bool:
        """Authorize."""
        result = await self._call(call.Authorize(id_tag=id_tag))
        return bool(result.id_tag_info["status"] == "Accepted")

    async def start(self, connector: int, id_tag: str, reading: Reading) -> bool:
        """StartTransaction; keeps the CSMS's transaction id."""
        result = await self._call(
            call.StartTransaction(
                connector_id=connector, id_tag=id_tag, meter_start=reading.energy_wh, timestamp=reading.timestamp
            )
        )
        if result.id_tag_info["status"] != "Accepted":
            return False
        self.transactions[connector] = int(result.transaction_id)
        return True

    async def meter(self, connector: int, reading: Reading) -> None:
        """MeterValues of the connector's transaction."""
        await self._call(
            call.MeterValues(
                connector_id=connector,
                transaction_id=self.transactions[connector],
                meter_value=[meter_value(reading)],
            )
        )

    async def stop(self, connector: int, id_tag: str, reading: Reading, reason: str) -> None:
        """StopTransaction with the final reading."""
        await self._call(
            call.StopTransaction(
                meter_stop=reading.energy_wh,
                timestamp=reading.timestamp,
                transaction_id=self.transactions.pop(connector),
                reason=reason,
                id_tag=id_tag,
                transaction_data=[meter_value(reading, "Transaction.End")],
            )
        )
