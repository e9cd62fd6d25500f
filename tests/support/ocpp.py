"""OCPP peers for tests: a charge point that sends exact frames, and readers of what the tap published."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Sequence
from typing import Any

import orjson
from sqlalchemy import select
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from chargewire.store.database import Database
from chargewire.store.tables import events


class ChargePoint:
    """A charge point speaking raw OCPP-J: records every text frame it sends and receives, exactly."""

    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection
        self.sent: list[str] = []
        self.received: list[str] = []
        self._ids = itertools.count(1)

    @classmethod
    async def connect(
        cls, url: str, subprotocols: Sequence[str] = ("ocpp1.6",), headers: dict[str, str] | None = None, **options: Any
    ) -> ChargePoint:
        """Open a connection to `url` (the tap), offering `subprotocols` in that order."""
        connection = await connect(
            url,
            subprotocols=[Subprotocol(name) for name in subprotocols],
            additional_headers=headers,
            compression=None,
            proxy=None,
            **options,
        )
        return cls(connection)

    async def send(self, text: str) -> None:
        """Send one text frame as it is."""
        self.sent.append(text)
        await self.connection.send(text)

    async def receive(self) -> str:
        """The next text frame from the CSMS (through the tap)."""
        message = await asyncio.wait_for(self.connection.recv(), 10)
        assert isinstance(message, str)
        self.received.append(message)
        return message

    async def call(self, action: str, payload: dict[str, Any]) -> list[Any]:
        """Send a CALL and return its answer (a CALLRESULT or CALLERROR frame, parsed)."""
        unique_id = f"m-{next(self._ids)}"
        await self.send(orjson.dumps([2, unique_id, action, payload]).decode())
        while True:
            answer = orjson.loads(await self.receive())
            if answer[1] == unique_id and answer[0] in (3, 4):
                return list(answer)

    async def aclose(self) -> None:
        """Close the connection normally."""
        await self.connection.close()


async def published(database: Database, name: str | None = None) -> list[dict[str, Any]]:
    """The payloads of the events stored so far, in publish order; only those named `name` when given."""
    query = select(events.c.name, events.c.payload).order_by(events.c.id)
    async with database.reading() as connection:
        rows = (await connection.execute(query)).all()
    return [orjson.loads(row.payload) for row in rows if name is None or row.name == name]


async def eventually(check: Callable[[], Any], timeout_s: float = 10.0) -> Any:
    """Poll `check` (sync or async) until it returns something truthy; fail after `timeout_s`."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not reached within {timeout_s}s: {check}")
        await asyncio.sleep(0.05)
