"""One simulated charge point's life: connect, boot, then a meter interval after another until stopped.

It reconnects after its connection drops (by chance, or because the other side closed it) without booting
again, as real charge points do, and goes on with the transactions it had running.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import random
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.typing import Subprotocol

from chargewire.clock import utcnow
from chargewire.errors import ChargewireError
from chargewire.sources.ocpp.simulator.behaviour import (
    FAULTS,
    SECURITY_EVENTS,
    STOP_REASONS,
    Behaviour,
    Connector,
    Move,
    StationMove,
    connector_move,
    iso,
    station_moves,
)
from chargewire.sources.ocpp.simulator.dialect import CallRefused, Dialect

logger = logging.getLogger(__name__)
T = TypeVar("T")
_OPEN_TIMEOUT_S = 10.0
# What ends one connection's life: the peer, the network, or a CSMS that stopped answering.
_CONNECTION_LOST = (OSError, ConnectionClosed, InvalidHandshake, TimeoutError)


@dataclass
class Tally:
    """What a fleet of simulated charge points has done so far."""

    connected: int = 0
    connections: int = 0
    refused_connections: int = 0
    calls: int = 0
    refused_calls: int = 0
    sessions_started: int = 0
    sessions_stopped: int = 0


class _Disconnect(ChargewireError):
    """The simulated charge point drops its connection on purpose."""


class Station:
    """A simulated charge point that speaks `dialect` to the CSMS (or the tap) at `url`."""

    def __init__(
        self,
        url: str,
        dialect: Dialect,
        behaviour: Behaviour,
        rng: random.Random,
        tally: Tally,
        password: str | None = None,
    ) -> None:
        self.url = url
        self.dialect = dialect
        self.behaviour = behaviour
        self.rng = rng
        self.tally = tally
        self.connectors = [Connector(number, rng.uniform(1e5, 5e6)) for number in range(1, behaviour.connectors + 1)]
        self.booted = False
        self._heartbeat_interval_s = behaviour.heartbeat_interval_s or 300.0
        self._headers = {"Authorization": basic_authorization(self.url, password)} if password else None

    async def run(self, stop: asyncio.Event) -> None:
        """Live until `stop` is set, reconnecting after each lost connection."""
        await _sleep_unless(stop, self.rng.uniform(0, min(self.behaviour.meter_interval_s, 5.0)))
        while not stop.is_set():
            try:
                await self._connection_life(stop)
            except _CONNECTION_LOST as lost:
                logger.debug("%s: connection lost: %r", self.url, lost)
            await _sleep_unless(stop, self.behaviour.reconnect_delay_s)

    async def _connection_life(self, stop: asyncio.Event) -> None:
        try:
            connection = await connect(
                self.url,
                subprotocols=[Subprotocol(self.dialect.subprotocol)],
                additional_headers=self._headers,
                compression=None,
                proxy=None,
                open_timeout=_OPEN_TIMEOUT_S,
            )
        except _CONNECTION_LOST:
            self.tally.refused_connections += 1
            raise
        async with connection:
            self.tally.connections += 1
            self.tally.connected += 1
            try:
                await self._speak(connection, stop)
            finally:
                self.tally.connected -= 1

    async def _speak(self, connection: ClientConnection, stop: asyncio.Event) -> None:
        """Read the connection and live on it until either ends; a lost connection is raised, a drop is not."""
        tasks = (asyncio.create_task(self.dialect.attach(connection)), asyncio.create_task(self._live(stop)))
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException) and not isinstance(outcome, asyncio.CancelledError | _Disconnect):
                raise outcome

    async def _live(self, stop: asyncio.Event) -> None:
        await self._boot_or_resume(stop)
        loop = asyncio.get_running_loop()
        next_heartbeat = loop.time() + self._heartbeat_interval_s
        while not stop.is_set():
            await _sleep_unless(stop, self.behaviour.meter_interval_s * self.rng.uniform(0.8, 1.2))
            if stop.is_set():
                return
            for connector in self.connectors:
                await self._step(connector)
            for move in station_moves(self.behaviour, self.rng):
                await self._station_step(move)
            if loop.time() >= next_heartbeat:
                await self._call(self.dialect.heartbeat())
                next_heartbeat = loop.time() + self._heartbeat_interval_s

    async def _boot_or_resume(self, stop: asyncio.Event) -> None:
        """Boot on the first connection (until accepted); on a reconnect only say how each connector is."""
        while not self.booted and not stop.is_set():
            interval = await self._call(self.dialect.boot())
            if interval is None:
                await _sleep_unless(stop, self.behaviour.reconnect_delay_s)
                continue
            self.booted = True
            self._heartbeat_interval_s = self.behaviour.heartbeat_interval_s or interval or 300.0
        now = iso(utcnow())
        await self._call(self.dialect.status(0, "Available", now))
        for connector in self.connectors:
            status = "Faulted" if connector.faulted else "Charging" if connector.charging else "Available"
            await self._call(self.dialect.status(connector.number, status, now))

    async def _step(self, connector: Connector) -> None:
        move = connector_move(connector, self.behaviour, self.rng)
        now = utcnow()
        number = connector.number
        if move is Move.START:
            await self._start(connector)
        elif move is Move.METER:
            connector.advance(self._charged_s(), self.rng)
            await self._call(self.dialect.meter(number, connector.reading(now)))
        elif move is Move.STOP:
            await self._stop(connector)
        elif move is Move.FAULT:
            connector.faulted = True
            await self._call(self.dialect.status(number, "Faulted", iso(now), self.rng.choice(FAULTS)))
        elif move is Move.RECOVER:
            connector.faulted = False
            await self._call(self.dialect.status(number, "Available", iso(now)))

    def _charged_s(self) -> float:
        """How long a connector charges in one interval, in meter time."""
        return self.behaviour.meter_interval_s * self.behaviour.speedup

    async def _start(self, connector: Connector) -> None:
        # The connector charges only once the CSMS accepted the start: a connection lost before leaves it idle.
        connector.begin(self.rng)
        number = connector.number
        if not await self._call(self.dialect.authorize(connector.id_tag)):
            return
        await self._call(self.dialect.status(number, "Preparing", iso(utcnow())))
        if not await self._call(self.dialect.start(number, connector.id_tag, connector.reading(utcnow()))):
            await self._call(self.dialect.status(number, "Available", iso(utcnow())))
            return
        connector.charging = True
        self.tally.sessions_started += 1
        await self._call(self.dialect.status(number, "Charging", iso(utcnow())))

    async def _stop(self, connector: Connector) -> None:
        connector.advance(self._charged_s(), self.rng)
        number = connector.number
        connector.charging = False
        reason = self.rng.choice(STOP_REASONS)
        await self._call(self.dialect.stop(number, connector.id_tag, connector.reading(utcnow()), reason))
        self.tally.sessions_stopped += 1
        await self._call(self.dialect.status(number, "Finishing", iso(utcnow())))
        await self._call(self.dialect.status(number, "Available", iso(utcnow())))

    async def _station_step(self, move: StationMove) -> None:
        if move is StationMove.SECURITY_EVENT:
            kind = self.rng.choice(SECURITY_EVENTS)
            await self._call(self.dialect.security_event(kind, iso(utcnow()), f"simulated {kind}"))
        elif move is StationMove.DATA_TRANSFER:
            data = orjson.dumps({"temperatureC": round(self.rng.uniform(15, 45), 1)}).decode()
            await self._call(self.dialect.data_transfer("Temperature", data))
        else:
            raise _Disconnect

    async def _call(self, call: Coroutine[Any, Any, T]) -> T | None:
        """Run one dialect call, counting it; a CALLERROR answer counts as refused and yields None."""
        self.tally.calls += 1
        try:
            return await call
        except CallRefused:
            self.tally.refused_calls += 1
            return None


def basic_authorization(url: str, password: str) -> str:
    """OCPP security profile 1 and 2: HTTP basic auth with the identity (the URL's last segment) as user name."""
    identity = url.rstrip("/").rsplit("/", 1)[-1]
    return "Basic " + base64.b64encode(f"{identity}:{password}".encode()).decode()


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
