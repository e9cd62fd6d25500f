"""Keep-alive HTTP/1.1 connections for the webhook channel, pooled per origin, opened only to guarded addresses.

- Connections are kept per origin (scheme, host, port) and handed out newest first; one idle longer than the
  keep-alive period is closed, and one the peer closed (or sent anything to) between exchanges is never reused.
- At most `limit` connections are in use or being opened at once, and at most `limit_per_host` per origin when
  that is set; `acquire` waits for room, so callers bound the wait with their own timeout.
- Every new connection goes only to an address the SSRF guard accepts at that moment (`resolve_allowed`, or
  `check_address` for an IP literal); with TLS the certificate is verified against the URL's host name (SNI).
  Each address gets the connect timeout (TCP and TLS handshake); the last failure is raised when all fail.

`exchange` is one request and its answer on a pooled connection, under one deadline. Raised by `acquire` (and
so by `exchange`): `BlockedAddress`, `NameNotResolved` (the name did not resolve), `ConnectFailed` (carrying the
OS error), `ssl.SSLError` (handshake or verification), `TimeoutError` (connect timeout); by `exchange` besides:
`TimeoutError` past its deadline, and `http_connection`'s `ConnectionClosed` and `InvalidResponse`.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections import deque
from typing import NamedTuple

from chargewire.channels.address_guard import IPNetwork, check_address, ip_literal, resolve_allowed
from chargewire.channels.http_connection import HttpClientError, HttpConnection, Response


class Origin(NamedTuple):
    """Where a connection goes: what a pooled connection may be reused for.

    Only plain values, because every exchange hashes it several times: an `ipaddress` object in it cost eight
    Python-level `__hash__` calls per attempt. An IP literal is recognised again when a connection is opened.
    """

    tls: bool
    host: str  # IDNA-encoded name, or an IP literal without brackets
    port: int


class ConnectFailed(HttpClientError):
    """No connection could be opened to the receiver."""

    def __init__(self, os_error: OSError) -> None:
        super().__init__(f"Could not connect: {os_error}.")
        self.os_error = os_error


class NameNotResolved(ConnectFailed):
    """The receiver's host name did not resolve."""


class ConnectionPool:
    """Opens, lends and keeps keep-alive connections (see the module docstring for the rules)."""

    def __init__(
        self,
        *,
        allow: tuple[IPNetwork, ...],
        ssl_context: ssl.SSLContext,
        connect_timeout_s: float,
        limit: int,
        limit_per_host: int,
        keepalive_s: float,
        body_limit: int,
    ) -> None:
        self._allow = allow
        self._ssl_context = ssl_context
        self._connect_timeout_s = connect_timeout_s
        self._limit = limit
        self._limit_per_host = limit_per_host
        self._keepalive_s = keepalive_s
        self._body_limit = body_limit
        self._loop = asyncio.get_running_loop()
        self._idle: dict[Origin, list[tuple[float, HttpConnection]]] = {}
        self._in_use = 0
        self._in_use_per_origin: dict[Origin, int] = {}
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._open: set[HttpConnection] = set()
        self._sweep: asyncio.TimerHandle | None = None

    async def acquire(self, origin: Origin) -> HttpConnection:
        """An idle connection to `origin`, or a new one once the limits leave room; give it back with `release`."""
        while True:
            connection = self._take_idle(origin)
            if connection is not None:
                return connection
            if self._has_room(origin):
                break
            waiter = self._loop.create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except BaseException:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
                raise
        self._count(origin, 1)
        try:
            connection = await self._connect(origin)
        except BaseException:
            self._count(origin, -1)
            raise
        self._open.add(connection)
        return connection

    async def exchange(self, origin: Origin, request: bytes, deadline: float) -> tuple[Response, bytes]:
        """Send `request` (whole, as bytes) on a pooled connection; the answer's head and body, by `deadline`.

        The deadline (event loop time) covers the wait for a connection, connecting, and the answer's head
        (`TimeoutError` past it); a body still arriving then ends with what arrived, as the status decided.
        """
        # An idle connection needs no timeout scope for the wait: the connection's own timer bounds the answer.
        connection = self._take_idle(origin)
        if connection is None:
            async with asyncio.timeout_at(deadline):
                connection = await self.acquire(origin)
        try:
            response = await connection.request(request, deadline)
            if response.body is None:  # still arriving when the head was read (or cut short)
                response.body = await _read_body(connection, deadline)
            return response, response.body
        finally:
            self.release(origin, connection)

    def release(self, origin: Origin, connection: HttpConnection) -> None:
        """Take a connection back: kept for reuse when its exchange ended cleanly, closed otherwise."""
        self._count(origin, -1)
        if connection.reusable:
            self._idle.setdefault(origin, []).append((self._loop.time() + self._keepalive_s, connection))
            if self._sweep is None:
                self._sweep = self._loop.call_at(self._loop.time() + self._keepalive_s, self._drop_expired)
        else:
            self._discard(connection)

    async def aclose(self) -> None:
        """Close every connection, idle or in use."""
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        self._idle.clear()
        for connection in list(self._open):
            self._discard(connection)

    def _take_idle(self, origin: Origin) -> HttpConnection | None:
        idle = self._idle.get(origin)
        now = self._loop.time()
        while idle:
            expires, connection = idle.pop()
            if expires > now and connection.reusable:
                self._count(origin, 1)
                return connection
            self._discard(connection)
        return None

    def _has_room(self, origin: Origin) -> bool:
        if self._in_use >= self._limit:
            return False
        return not self._limit_per_host or self._in_use_per_origin.get(origin, 0) < self._limit_per_host

    def _count(self, origin: Origin, change: int) -> None:
        self._in_use += change
        if self._limit_per_host:  # counted per origin only where a per-host cap reads it
            self._in_use_per_origin[origin] = self._in_use_per_origin.get(origin, 0) + change
            if not self._in_use_per_origin[origin]:
                del self._in_use_per_origin[origin]
        if change < 0:
            # Every waiter looks again: with a per-host cap the first one may still have no room, another may.
            while self._waiters:
                waiter = self._waiters.popleft()
                if not waiter.done():
                    waiter.set_result(None)

    def _discard(self, connection: HttpConnection) -> None:
        connection.close()
        self._open.discard(connection)

    def _drop_expired(self) -> None:
        """Close idle connections past their keep-alive; run again while any stay idle."""
        now = self._loop.time()
        earliest: float | None = None
        for origin, idle in list(self._idle.items()):
            for entry in [entry for entry in idle if entry[0] <= now or not entry[1].reusable]:
                idle.remove(entry)
                self._discard(entry[1])
            if not idle:
                del self._idle[origin]
            elif earliest is None or idle[0][0] < earliest:
                earliest = idle[0][0]
        self._sweep = None if earliest is None else self._loop.call_at(earliest, self._drop_expired)

    async def _connect(self, origin: Origin) -> HttpConnection:
        last_error: BaseException | None = None
        for family, address in await self._addresses(origin):
            try:
                return await self._open_one(origin, family, address)
            except (OSError, TimeoutError) as exc:  # ssl.SSLError is an OSError
                last_error = exc
        if isinstance(last_error, ssl.SSLError | TimeoutError):
            raise last_error
        if isinstance(last_error, OSError):
            raise ConnectFailed(last_error) from last_error
        raise ConnectFailed(OSError(f"{origin.host} resolved to no address"))

    async def _addresses(self, origin: Origin) -> list[tuple[int, str]]:
        literal = ip_literal(origin.host)
        if literal is not None:
            check_address(literal, self._allow)
            family = socket.AF_INET if literal.version == 4 else socket.AF_INET6
            return [(family, str(literal))]
        try:
            resolved = await resolve_allowed(origin.host, origin.port, self._allow)
        except socket.gaierror as exc:
            raise NameNotResolved(exc) from exc
        return [(entry.family, str(entry.address)) for entry in resolved]

    async def _open_one(self, origin: Origin, family: int, address: str) -> HttpConnection:
        async with asyncio.timeout(self._connect_timeout_s):
            _, connection = await self._loop.create_connection(
                lambda: HttpConnection(self._body_limit),
                host=address,
                port=origin.port,
                family=family,
                ssl=self._ssl_context if origin.tls else None,
                server_hostname=origin.host if origin.tls else None,
            )
        return connection


async def _read_body(connection: HttpConnection, deadline: float) -> bytes:
    if connection.body_done:
        return connection.received_body
    try:
        async with asyncio.timeout_at(deadline):
            return await connection.read_body()
    except TimeoutError:
        return connection.received_body
