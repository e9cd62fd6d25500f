"""What a simulated charge point says, independent of the OCPP version that says it.

A dialect wraps one version's `ocpp.ChargePoint` (the PyPI package) and turns each step of a charge point's
life into that version's calls. It keeps the version's own transaction state (1.6: the CSMS's transaction
ids; 2.0.1: the charge point's transaction ids and sequence numbers), which outlives a reconnect.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from ocpp.exceptions import OCPPError
from websockets.asyncio.client import ClientConnection

from chargewire.errors import ChargewireError
from chargewire.sources.ocpp.simulator.behaviour import VENDORS, Reading

# The `ocpp` package logs every frame at INFO; a simulator with many charge points would drown its own log.
FRAME_LOGGER = logging.getLogger(f"{__name__}.frames")
FRAME_LOGGER.setLevel(logging.WARNING)
# How long a call waits for its answer before the charge point gives up on the connection.
RESPONSE_TIMEOUT_S = 15


class CallRefused(ChargewireError):
    """The CSMS answered a call with a CALLERROR."""


class Dialect(Protocol):
    """One OCPP version's calls for the steps of a charge point's life."""

    subprotocol: str

    def attach(self, connection: ClientConnection) -> Coroutine[Any, Any, None]:
        """Speak over a new connection; returns the coroutine that reads it (runs until the connection closes)."""

    async def boot(self) -> float | None:
        """BootNotification: the heartbeat interval the CSMS asked for, or None when it did not accept."""

    async def heartbeat(self) -> None:
        """Heartbeat."""

    async def status(self, connector: int, status: str, timestamp: str, error_code: str = "NoError") -> None:
        """StatusNotification in 1.6 vocabulary (Available, Preparing, Charging, Finishing, Faulted)."""

    async def authorize(self, id_tag: str) -> bool:
        """Authorize: whether the CSMS accepted the tag."""

    async def start(self, connector: int, id_tag: str, reading: Reading) -> bool:
        """Start a transaction on `connector`: whether the CSMS accepted it."""

    async def meter(self, connector: int, reading: Reading) -> None:
        """Meter values of the transaction running on `connector`."""

    async def stop(self, connector: int, id_tag: str, reading: Reading, reason: str) -> None:
        """Stop the transaction running on `connector`."""

    async def security_event(self, kind: str, timestamp: str, tech_info: str) -> None:
        """SecurityEventNotification."""

    async def data_transfer(self, message_id: str, data: str) -> None:
        """DataTransfer from the charge point to the CSMS."""


class VersionCalls:
    """What both versions' dialects share: the `ocpp` ChargePoint of the current connection, and the calls
    whose shape is the same in 1.6 and 2.0.1 (Heartbeat, SecurityEventNotification, DataTransfer)."""

    subprotocol: str
    # The version's `ocpp` ChargePoint class, its `call` and its `call_result` modules.
    point_class: Any
    calls: Any
    results: Any

    def __init__(self, identity: str, rng: random.Random) -> None:
        self.identity = identity
        self.vendor, self.model = rng.choice(VENDORS)
        self._point: Any = None

    def attach(self, connection: ClientConnection) -> Coroutine[Any, Any, None]:
        """Speak over `connection`; returns its reading loop."""
        self._point = self.point_class(self.identity, connection, RESPONSE_TIMEOUT_S, FRAME_LOGGER)
        for action, answer in self.answers().items():
            # An entry as the package's @on decorator makes it; the package checks calls and answers as usual.
            self._point.route_map[action] = {"_on_action": answer}
        reading: Coroutine[Any, Any, None] = self._point.start()
        return reading

    def answers(self) -> dict[str, Callable[..., Any]]:
        """Answers to calls from the CSMS, by action; the `ocpp` package answers others with NotImplemented.

        Reservations are accepted (the simulated charge point then starts its sessions as before).
        """
        return {
            "ReserveNow": lambda **_: self.results.ReserveNow(status="Accepted"),
            "CancelReservation": lambda **_: self.results.CancelReservation(status="Accepted"),
        }

    async def _call(self, payload: Any) -> Any:
        return await send_call(self._point, payload)

    async def heartbeat(self) -> None:
        """Heartbeat."""
        await self._call(self.calls.Heartbeat())

    async def security_event(self, kind: str, timestamp: str, tech_info: str) -> None:
        """SecurityEventNotification (in 1.6, its security extension)."""
        await self._call(self.calls.SecurityEventNotification(type=kind, timestamp=timestamp, tech_info=tech_info))

    async def data_transfer(self, message_id: str, data: str) -> None:
        """DataTransfer to the CSMS."""
        await self._call(
            self.calls.DataTransfer(vendor_id="com.chargewire.simulator", message_id=message_id, data=data)
        )


async def send_call(point: Any, payload: Any) -> Any:
    """Send one call through an `ocpp` ChargePoint and return its result.

    Raises CallRefused when the CSMS answered with a CALLERROR or with a result that fails its schema.
    """
    try:
        result = await point.call(payload)
    except OCPPError as error:
        raise CallRefused(str(error)) from error
    if result is None:
        raise CallRefused
    return result
