"""The transparent OCPP-J proxy: each charge point's WebSocket relayed to the CSMS, frame by frame.

A charge point connects to `<prefix>/<identity>`, where the prefix is the upstream URL's path. The tap opens
`<upstream>/<identity>` first, offering the charge point's subprotocols in its order and its `Authorization`
and `User-Agent` headers, and answers the charge point only then: with the subprotocol the CSMS chose, or
with the CSMS's refusal (502 when it cannot be reached). Each data frame is sent on as it is parsed (same
opcode, payload and FIN bit, in order; see `relay`) before the tap reads it, so observing never delays,
drops or changes a frame. Pings are answered by each side's own connection. When one side closes, the other is
closed with the same code; a charge point that connects again with the same identity replaces (closes)
its previous connection.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import unquote, urlsplit

from websockets.asyncio.client import connect
from websockets.asyncio.connection import Connection
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import InvalidHandshake, InvalidStatus, InvalidURI
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from chargewire.sources.ocpp.correlation import Direction
from chargewire.sources.ocpp.frames import Malformed, parse_frame
from chargewire.sources.ocpp.metrics import TapMetrics
from chargewire.sources.ocpp.pipeline import Change, EventPipeline, Link, Observation
from chargewire.sources.ocpp.relay import RelayClientConnection, RelayServerConnection, send_frame

logger = logging.getLogger(__name__)
# websockets logs every connection opened and closed at INFO: thousands a minute in a reconnect storm.
_connection_logger = logging.getLogger(f"{__name__}.connections")
_connection_logger.setLevel(logging.WARNING)

_FORWARDED_HEADERS = ("Authorization", "User-Agent")
_REPLACED = (1000, "replaced by a new connection of the same charge point")
# Codes a close frame may carry (RFC 6455 7.4); the others only describe what happened locally.
_SENDABLE_CODES = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014})
_SWEEP_INTERVAL_S = 1.0


@dataclass(frozen=True, slots=True)
class ProxySettings:
    """Where to listen and forward, and the limits of each connection."""

    upstream: str
    max_frame_bytes: int
    open_timeout_s: float
    ping_interval_s: float | None
    missed_heartbeats: int
    server_ssl: ssl.SSLContext | None = None
    upstream_ssl: ssl.SSLContext | None = None

    @property
    def prefix(self) -> str:
        """The path under which charge points connect: the upstream URL's, ending in `/`."""
        path = urlsplit(self.upstream).path
        return path if path.endswith("/") else f"{path}/"


@dataclass(eq=False, slots=True)
class _Pair:
    link: Link
    charge_point: RelayServerConnection
    upstream: RelayClientConnection


class OcppProxy:
    """Relays charge points to the CSMS and reports what passes to the event pipeline."""

    def __init__(
        self, settings: ProxySettings, pipeline: EventPipeline, metrics: TapMetrics, render_metrics: Callable[[], bytes]
    ) -> None:
        self._settings = settings
        self._pipeline = pipeline
        self._metrics = metrics
        self._render_metrics = render_metrics
        self._opening: dict[ServerConnection, tuple[str, RelayClientConnection]] = {}
        self._pairs: dict[str, _Pair] = {}
        self._background: set[asyncio.Task[None]] = set()

    async def serve(self, host: str, port: int) -> Server:
        """Start listening; the caller closes the returned server."""
        settings = self._settings
        server = await serve(
            self._relay,
            host,
            port,
            process_request=self._open_upstream,
            process_response=self._release_unused,
            select_subprotocol=self._upstream_subprotocol,
            ssl=settings.server_ssl,
            max_size=settings.max_frame_bytes,
            compression=None,
            ping_interval=settings.ping_interval_s,
            ping_timeout=settings.ping_interval_s,
            open_timeout=settings.open_timeout_s * 2,
            server_header=None,
            logger=_connection_logger,
            create_connection=RelayServerConnection,
        )
        self._background.add(asyncio.create_task(self._sweep_silent()))
        return server

    async def aclose(self) -> None:
        """Stop the background sweep."""
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)

    async def _open_upstream(self, connection: ServerConnection, request: Request) -> Response | None:
        path, _, query = request.path.partition("?")
        if path == "/metrics":
            response = connection.respond(200, self._render_metrics().decode())
            response.headers["Content-Type"] = "text/plain; version=0.0.4; charset=utf-8"
            return response
        segment = path.removeprefix(self._settings.prefix)
        if segment == path or not segment or "/" in segment:
            return connection.respond(404, f"Charge points connect to {self._settings.prefix}<identity>.\n")
        try:
            upstream = await self._connect(request, segment, query)
        except InvalidStatus as refusal:
            logger.info("CSMS refused charge point %s with %s", unquote(segment), refusal.response.status_code)
            return connection.respond(refusal.response.status_code, "The CSMS refused the connection.\n")
        except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as error:
            logger.warning("CSMS not reachable for charge point %s: %s", unquote(segment), error)
            return connection.respond(502, "The CSMS cannot be reached.\n")
        self._opening[connection] = (unquote(segment), upstream)
        return None

    async def _connect(self, request: Request, segment: str, query: str) -> RelayClientConnection:
        settings = self._settings
        offered = [
            Subprotocol(name.strip())
            for header in request.headers.get_all("Sec-WebSocket-Protocol")
            for name in header.split(",")
            if name.strip()
        ]
        headers = [(name, request.headers[name]) for name in _FORWARDED_HEADERS if name in request.headers]
        url = settings.upstream.rstrip("/") + "/" + segment + (f"?{query}" if query else "")
        upstream = await connect(
            url,
            subprotocols=offered or None,
            additional_headers=headers,
            user_agent_header=None,
            compression=None,
            proxy=None,
            open_timeout=settings.open_timeout_s,
            ping_interval=settings.ping_interval_s,
            ping_timeout=settings.ping_interval_s,
            max_size=settings.max_frame_bytes,
            ssl=settings.upstream_ssl if url.startswith("wss:") else None,
            logger=_connection_logger,
            create_connection=RelayClientConnection,
        )
        return cast(RelayClientConnection, upstream)  # what create_connection made

    def _upstream_subprotocol(self, connection: ServerConnection, offered: Sequence[Subprotocol]) -> Subprotocol | None:
        opening = self._opening.get(connection)
        chosen = opening[1].subprotocol if opening is not None else None
        return chosen if chosen in offered else None

    async def _release_unused(self, connection: ServerConnection, request: Request, response: Response) -> None:
        """Close the upstream of a handshake that did not succeed (the charge point's request was refused)."""
        if response.status_code != 101:
            opening = self._opening.pop(connection, None)
            if opening is not None:
                await opening[1].close()
            return
        # The handshake may still fail (the charge point hung up): then no relay takes the upstream.
        asyncio.get_running_loop().call_later(self._settings.open_timeout_s * 2, self._abandon, connection)

    def _abandon(self, connection: ServerConnection) -> None:
        opening = self._opening.pop(connection, None)
        if opening is not None:
            self._spawn(opening[1].close())

    async def _relay(self, connection: ServerConnection) -> None:
        identity, upstream = self._opening.pop(connection)
        charge_point = cast(RelayServerConnection, connection)
        pair = _Pair(Link(identity, upstream.subprotocol), charge_point, upstream)
        pair.link.last_frame_at = asyncio.get_running_loop().time()
        previous = self._pairs.get(identity)
        self._pairs[identity] = pair
        if previous is not None:
            self._spawn(previous.charge_point.close(*_REPLACED))
        self._metrics.connections += 1
        self._pipeline.offer(Observation(pair.link, change=Change.CONNECTED))
        try:
            await self._relay_both_ways(pair)
        finally:
            self._metrics.connections -= 1
            if self._pairs.get(identity) is pair:
                del self._pairs[identity]
                self._pipeline.offer(Observation(pair.link, change=Change.DISCONNECTED))

    async def _relay_both_ways(self, pair: _Pair) -> None:
        charge_point, upstream = pair.charge_point, pair.upstream
        charge_point.peer, upstream.peer = upstream, charge_point
        to_csms = _OneWay(self, pair.link, upstream, Direction.FROM_CHARGE_POINT)
        to_charge_point = _OneWay(self, pair.link, charge_point, Direction.FROM_CSMS)
        # What each side sent while the handshakes went on, then everything as it comes.
        for source, forward in ((upstream, to_charge_point), (charge_point, to_csms)):
            early, source.early = source.early, []
            for frame in early:
                forward(frame)
            source.forward = forward
        closing = {
            asyncio.create_task(charge_point.wait_closed()): (charge_point, upstream),
            asyncio.create_task(upstream.wait_closed()): (upstream, charge_point),
        }
        try:
            done, _ = await asyncio.wait(closing, return_when=asyncio.FIRST_COMPLETED)
            closed, other = closing[next(iter(done))]
            await other.close(*_close_of(closed))
        finally:
            for task in closing:
                task.cancel()
            await upstream.close()

    def read(self, link: Link, sender: Direction, text: bytes) -> None:
        """Observe one text message that was forwarded; a failure to read it never ends the relay."""
        try:
            self._observe(link, sender, text)
        except Exception:
            logger.exception("OCPP tap: could not read a frame of charge point %s", link.identity)
            self._metrics.reject(link.identity, "unreadable frame")

    def _observe(self, link: Link, sender: Direction, text: bytes) -> None:
        self._metrics.forwarded(sender)
        if sender is Direction.FROM_CHARGE_POINT:
            link.last_frame_at = asyncio.get_running_loop().time()
            if link.silent:
                link.silent = False
                self._pipeline.offer(Observation(link, change=Change.HEARD_AGAIN))
        frame = parse_frame(text)
        if isinstance(frame, Malformed):
            self._metrics.reject(link.identity, frame.reason)
            return
        exchange = link.correlator.observe(sender, frame)
        if exchange is not None:
            self._pipeline.offer(Observation(link, exchange))

    async def _sweep_silent(self) -> None:
        """Mark charge points that missed heartbeats (no frame for that many intervals) temporarily unavailable."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(_SWEEP_INTERVAL_S)
            now = loop.time()
            for pair in list(self._pairs.values()):
                link = pair.link
                interval = link.heartbeat_interval_s
                if (
                    interval
                    and not link.silent
                    and now - link.last_frame_at > interval * self._settings.missed_heartbeats
                ):
                    link.silent = True
                    self._pipeline.offer(Observation(link, change=Change.SILENT))

    def _spawn(self, closing: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(closing)
        self._background.add(task)
        task.add_done_callback(self._background.discard)


class _OneWay:
    """One direction of a relay: sends each data frame on, and reads each whole text message it forwarded."""

    __slots__ = ("_link", "_parts", "_proxy", "_sender", "_target")

    def __init__(self, proxy: OcppProxy, link: Link, target: Connection, sender: Direction) -> None:
        self._proxy = proxy
        self._link = link
        self._target = target
        self._sender = sender
        self._parts: list[bytes] | None = None

    def __call__(self, frame: Frame) -> None:
        if not send_frame(self._target, frame):
            return  # the other side is closing: its close ends the relay
        opcode = frame.opcode
        if opcode is Opcode.TEXT:
            if frame.fin:
                self._proxy.read(self._link, self._sender, bytes(frame.data))
            else:
                self._parts = [bytes(frame.data)]
        elif opcode is Opcode.CONT and self._parts is not None:
            self._parts.append(bytes(frame.data))
            if frame.fin:
                text, self._parts = b"".join(self._parts), None
                self._proxy.read(self._link, self._sender, text)
        else:
            self._parts = None


def _close_of(connection: Connection) -> tuple[int, str]:
    """The code and reason to close the other side with: those this side closed with."""
    frame = connection.protocol.close_rcvd or connection.protocol.close_sent
    if frame is None:
        return _stand_in(1006), ""
    code = frame.code if frame.code in _SENDABLE_CODES or 3000 <= frame.code < 5000 else _stand_in(frame.code)
    return code, frame.reason


def _stand_in(code: int) -> int:
    """A code to send for one that only describes what happened: no code given (1005) or a lost connection."""
    return 1000 if code == 1005 else 1001
