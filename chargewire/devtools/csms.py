"""A small CSMS for trying the OCPP tap and testing it: accepts every charge point, answers every call.

It records every text frame it receives (per identity, in order) and the handshake headers, answers OCPP
1.6 and 2.0.1 calls with plausible results (`Accepted`, increasing transaction ids), answers actions it
does not know (or is told to fail) with a CALLERROR `NotImplemented`, and can send raw frames to a charge
point. Options make it require a basic-auth header or refuse identities, as a real CSMS may.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

logger = logging.getLogger(__name__)

DEFAULT_SUBPROTOCOLS = ("ocpp1.6", "ocpp2.0.1", "ocpp2.1")


# Seconds since 2025 times 10: above any id an earlier run gave unless it started 10 transactions a second,
# and within the 32-bit integers many 1.6 charge points keep transaction ids in (until 2031).
_ID_EPOCH_S = 1_735_689_600


def first_id_from_clock() -> int:
    """A first transaction id for a CSMS started again, above the ids its earlier runs gave."""
    return (int(time.time()) - _ID_EPOCH_S) * 10


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass
class DevCsms:
    """The CSMS; `received` holds `(identity, text)` of every text frame, in arrival order."""

    subprotocols: Sequence[str] = DEFAULT_SUBPROTOCOLS
    required_authorization: str | None = None
    refused: set[str] = field(default_factory=set)
    id_tag_status: str = "Accepted"
    failing_actions: set[str] = field(default_factory=set)
    heartbeat_interval_s: int = 300
    received: list[tuple[str, str]] = field(default_factory=list)
    handshakes: list[Request] = field(default_factory=list)
    connections: dict[str, ServerConnection] = field(default_factory=dict)
    record: bool = True
    # A real CSMS never gives a transaction id twice; one started again can begin above its last run's ids.
    first_transaction_id: int = 1

    def __post_init__(self) -> None:
        self._transaction_ids = itertools.count(self.first_transaction_id)

    async def start(self, host: str = "127.0.0.1", port: int = 0, tls: ssl.SSLContext | None = None) -> Server:
        """Listen (with TLS when given a context); port 0 picks a free one (see the server's sockets)."""
        return await serve(
            self._serve,
            host,
            port,
            subprotocols=[Subprotocol(name) for name in self.subprotocols],
            process_request=self._check,
            compression=None,
            ping_interval=None,
            max_size=None,
            ssl=tls,
        )

    def frames_from(self, identity: str) -> list[str]:
        """The text frames received from one identity, in order."""
        return [text for sender, text in self.received if sender == identity]

    async def send(self, identity: str, text: str) -> None:
        """Send a raw text frame to a connected charge point."""
        await self.connections[identity].send(text)

    def _check(self, connection: ServerConnection, request: Request) -> Response | None:
        self.handshakes.append(request)
        identity = request.path.rsplit("/", 1)[-1]
        if identity in self.refused:
            return connection.respond(403, "Unknown charge point.\n")
        if self.required_authorization is not None and request.headers.get("Authorization") != (
            self.required_authorization
        ):
            return connection.respond(401, "Wrong credentials.\n")
        return None

    async def _serve(self, connection: ServerConnection) -> None:
        identity = connection.request.path.rsplit("/", 1)[-1] if connection.request else ""
        self.connections[identity] = connection
        version = connection.subprotocol or "ocpp1.6"
        with contextlib.suppress(ConnectionClosed):
            async for message in connection:
                if not isinstance(message, str):
                    continue
                if self.record:
                    self.received.append((identity, message))
                answer = self._answer(version, message)
                if answer is not None:
                    await connection.send(answer)
        if self.connections.get(identity) is connection:
            del self.connections[identity]

    def _answer(self, version: str, text: str) -> str | None:
        try:
            message = orjson.loads(text)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(message, list) or len(message) != 4 or message[0] != 2:
            return None
        unique_id, action, payload = message[1], message[2], message[3]
        result = None if action in self.failing_actions else self._result(version, action, payload)
        if result is None:
            return orjson.dumps([4, unique_id, "NotImplemented", f"{action} is not supported", {}]).decode()
        return orjson.dumps([3, unique_id, result]).decode()

    def _result(self, version: str, action: str, payload: Any) -> dict[str, Any] | None:
        id_tag_info = {"status": self.id_tag_status}
        results: dict[str, dict[str, Any]] = {
            "BootNotification": {"currentTime": _now(), "interval": self.heartbeat_interval_s, "status": "Accepted"},
            "Heartbeat": {"currentTime": _now()},
            "StatusNotification": {},
            "MeterValues": {},
            "DiagnosticsStatusNotification": {},
            "LogStatusNotification": {},
            "SecurityEventNotification": {},
            "FirmwareStatusNotification": {},
            "DataTransfer": {"status": "Accepted"},
        }
        if version == "ocpp1.6":
            results |= {
                "Authorize": {"idTagInfo": id_tag_info},
                "StartTransaction": {"idTagInfo": id_tag_info, "transactionId": next(self._transaction_ids)},
                "StopTransaction": {"idTagInfo": id_tag_info},
            }
        else:
            has_token = isinstance(payload, dict) and "idToken" in payload
            results |= {
                "Authorize": {"idTokenInfo": id_tag_info},
                "TransactionEvent": {"idTokenInfo": id_tag_info} if has_token else {},
                "NotifyEvent": {},
                "ReservationStatusUpdate": {},
            }
        return results.get(action)


async def run_dev_csms(host: str, port: int) -> None:
    """Run a dev CSMS until cancelled, without recording frames (it may run for long).

    Its transaction ids start from the clock, so a tap that kept its registry from an earlier run never takes a
    new transaction for one it saw stop.
    """
    csms = DevCsms(record=False, first_transaction_id=first_id_from_clock())
    server = await csms.start(host, port)
    logger.info("dev CSMS listening on ws://%s:%s/ocpp/<identity>", host, port)
    async with server:
        await asyncio.Future()
