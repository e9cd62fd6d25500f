"""The simulated charge point's calls in OCPP 2.0.1, through `ocpp.v201.ChargePoint`."""

from __future__ import annotations

import itertools
import random
import uuid
from dataclasses import dataclass, field
from typing import Any

from ocpp.v201 import ChargePoint, call, call_result

from chargewire.sources.ocpp.simulator.behaviour import MEASURANDS, Reading
from chargewire.sources.ocpp.simulator.dialect import VersionCalls

# 2.0.1 connectors are Available, Occupied, Reserved, Unavailable or Faulted; the charging detail is the
# transaction's chargingState.
_CONNECTOR_STATUSES = {"Preparing": "Occupied", "Charging": "Occupied", "Finishing": "Occupied"}


def meter_value(reading: Reading, context: str) -> dict[str, Any]:
    """A 2.0.1 MeterValue of `reading` (energy in kWh as Wh with a multiplier of 3, as many meters send it)."""
    sampled = []
    for measurand, unit, name in MEASURANDS:
        value = getattr(reading, name)
        unit_of_measure: dict[str, Any] = {"unit": unit}
        if unit == "Wh":
            value, unit_of_measure = value / 1000, {"unit": "Wh", "multiplier": 3}
        sampled.append({"value": value, "measurand": measurand, "context": context, "unit_of_measure": unit_of_measure})
    return {"timestamp": reading.timestamp, "sampled_value": sampled}


@dataclass
class _Transaction:
    id: str
    id_tag: str
    seq_no: itertools.count[int] = field(default_factory=itertools.count)


class Ocpp201(VersionCalls):
    """A charge point speaking OCPP 2.0.1; its own transaction ids and sequence numbers survive reconnects."""

    point_class = ChargePoint
    calls = call
    results = call_result
    subprotocol = "ocpp2.0.1"

    def __init__(self, identity: str, rng: random.Random) -> None:
        super().__init__(identity, rng)
        self.transactions: dict[int, _Transaction] = {}

    async def boot(self) -> float | None:
        """BootNotification; the heartbeat interval when accepted."""
        station = {
            "model": self.model,
            "vendor_name": self.vendor,
            "serial_number": f"SN-{self.identity}",
            "firmware_version": "2.4.0",
        }
        result = await self._call(call.BootNotification(charging_station=station, reason="PowerUp"))
        return float(result.interval) if result.status == "Accepted" else None

    async def status(self, connector: int, status: str, timestamp: str, error_code: str = "NoError") -> None:
        """StatusNotification of the EVSE's one connector (2.0.1 has no station-wide connector 0)."""
        if connector == 0:
            return
        await self._call(
            call.StatusNotification(
                timestamp=timestamp,
                connector_status=_CONNECTOR_STATUSES.get(status, status),
                evse_id=connector,
                connector_id=1,
            )
        )

    async def authorize(self, id_tag: str) -> bool:
        """Authorize."""
        result = await self._call(call.Authorize(id_token=_id_token(id_tag)))
        return bool(result.id_token_info["status"] == "Accepted")

    async def start(self, connector: int, id_tag: str, reading: Reading) -> bool:
        """TransactionEvent Started, with the Transaction.Begin reading."""
        # A UUID, as many stations use: unique across runs, so a tap that keeps its registry never sees one again.
        transaction = _Transaction(str(uuid.uuid4()), id_tag)
        self.transactions[connector] = transaction
        result = await self._transaction_event(
            connector, "Started", "Authorized", reading, "Transaction.Begin", id_token=_id_token(id_tag)
        )
        if result.id_token_info is not None and result.id_token_info["status"] != "Accepted":
            del self.transactions[connector]
            return False
        return True

    async def meter(self, connector: int, reading: Reading) -> None:
        """TransactionEvent Updated with periodic meter values."""
        await self._transaction_event(connector, "Updated", "MeterValuePeriodic", reading, "Sample.Periodic")

    async def stop(self, connector: int, id_tag: str, reading: Reading, reason: str) -> None:
        """TransactionEvent Ended, with the Transaction.End reading."""
        await self._transaction_event(connector, "Ended", "StopAuthorized", reading, "Transaction.End", reason)
        del self.transactions[connector]

    async def _transaction_event(
        self,
        connector: int,
        event_type: str,
        trigger: str,
        reading: Reading,
        context: str,
        stopped_reason: str | None = None,
        id_token: dict[str, str] | None = None,
    ) -> Any:
        transaction = self.transactions[connector]
        info: dict[str, Any] = {"transaction_id": transaction.id, "charging_state": "Charging"}
        if stopped_reason is not None:
            info |= {"charging_state": "EVConnected", "stopped_reason": stopped_reason}
        return await self._call(
            call.TransactionEvent(
                event_type=event_type,
                timestamp=reading.timestamp,
                trigger_reason=trigger,
                seq_no=next(transaction.seq_no),
                transaction_info=info,
                meter_value=[meter_value(reading, context)],
                evse={"id": connector, "connector_id": 1},
                id_token=id_token,
            )
        )


def _id_token(id_tag: str) -> dict[str, str]:
    return {"id_token": id_tag, "type": "ISO14443"}
