"""The guarded Kafka connector: librdkafka dials only chargewire's loopback listeners, chargewire dials the brokers.

librdkafka resolves broker names itself when it connects, and confluent-kafka exposes none of its resolve or
connect hooks, so a name checked by chargewire could point somewhere else by the time librdkafka dials it (DNS
rebinding). So librdkafka is given no broker address at all. Each producer gets a `BrokerRoute`: one listener on
127.0.0.1 (an ephemeral port) per broker it may reach, its bootstrap brokers first. When librdkafka connects to
a listener, the connector resolves that broker's name then and there, checks every address with the address
guard (`channels.address_guard.resolve_allowed`), and opens the TCP connection to exactly a checked address.
A name that does not resolve, or resolves to any blocked address, closes librdkafka's connection (to
librdkafka, a broker that is down) and leaves the reason on the route (`BrokerRoute.failure`) for the channel to
report; its text names the broker as configured, never what it resolved to.

The brokers a cluster advertises reach librdkafka only in Metadata responses, which the connector rewrites on
the way (`relay` relays each connection, through `frames` and `metadata_rewrite`): each advertised host and
port becomes 127.0.0.1 and the port of a listener opened for it, so those connections are checked the same
way. A response it cannot read, and a request for brokers it does not relocate, close the connection: fail
closed.

TLS (SSL and SASL_SSL clusters) is the connector's too (`broker_tls`): it verifies the broker's certificate and
name and presents the client certificate, while librdkafka speaks PLAINTEXT (or SASL_PLAINTEXT) to the
listener; SASL frames pass through unchanged.

All listeners and connections of the process run on one thread with its own event loop, started on first use,
so proxying never takes the dispatcher's loop. An error in one connection closes that connection alone; the
loop itself is restarted if it ever dies, and every fault is logged once and counted (`ConnectorCounts`).
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import ssl
import threading
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from chargewire.channels.address_guard import IPNetwork, ResolvedAddress, resolve_allowed
from chargewire.errors import DeliveryError
from chargewire.kafka.relay import READ_SIZE, BrokerTarget, Relay, broker_name

logger = logging.getLogger(__name__)

Resolver = Callable[[str, int, tuple[IPNetwork, ...]], Awaitable[list[ResolvedAddress]]]

LOOPBACK = "127.0.0.1"
_RELEASE_WAIT_S = 1.0
_LOCAL_ADDRESS = re.compile(r"127\.0\.0\.1:(\d+)")


@dataclass
class ConnectorCounts:
    """Broker connections the connector opened, and those it refused by reason (read by `/metrics`)."""

    opened: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    faults: int = 0


class BrokerRoute:
    """One producer's listeners: one per broker it may reach, each leading to that broker only, checked on connect."""

    def __init__(
        self,
        connector: KafkaConnector,
        allow: tuple[IPNetwork, ...],
        tls: ssl.SSLContext | None,
        connect_timeout_s: float,
    ) -> None:
        self.allow = allow
        self.tls = tls
        self.connect_timeout_s = connect_timeout_s
        # Broker -> why the last connection to it failed, until one succeeds: the channel's explanation for a
        # record that failed because no broker could be reached. Written on the connector's thread only.
        self._failures: dict[str, DeliveryError] = {}
        self._connector = connector
        self._lock = threading.Lock()  # listeners open from the producer's side (bootstrap) and the connector's
        self._ports: dict[tuple[str, int], int] = {}
        self._brokers: dict[int, str] = {}  # listener port -> the broker behind it, "host:port"
        self._sockets: list[socket.socket] = []
        self.closed = False

    def listener_for(self, host: str, port: int, *, advertised: bool = True) -> tuple[str, int]:
        """The loopback address of the listener leading to `host`:`port`, opened on first use.

        `advertised` says whether the cluster's metadata named the broker, or the subscription did (bootstrap).
        """
        key = (host.lower(), port)
        with self._lock:
            if self.closed:
                raise ConnectionAbortedError("the producer of this route has closed")
            local_port = self._ports.get(key)
            if local_port is None:
                listening = socket.create_server((LOOPBACK, 0))
                local_port = listening.getsockname()[1]
                self._ports[key] = local_port
                self._brokers[local_port] = broker_name(host, port)
                self._sockets.append(listening)
                self._connector.serve(self, listening, BrokerTarget(host, port, advertised))
        return LOOPBACK, local_port

    def local_addresses(self, brokers: tuple[tuple[str, int], ...]) -> list[str]:
        """The "127.0.0.1:port" librdkafka is to bootstrap from, one per broker."""
        return [":".join(map(str, self.listener_for(host, port, advertised=False))) for host, port in brokers]

    @property
    def failure(self) -> DeliveryError | None:
        """Why the connector last failed to connect to one of its brokers, if it has not connected since."""
        failures = list(self._failures.values())  # a copy: the connector's thread may change the dict meanwhile
        return failures[-1] if failures else None

    def note_connected(self, broker: str) -> None:
        """Forget why `broker` could not be reached: it was just now."""
        self._failures.pop(broker, None)

    def note_failure(self, broker: str, error: DeliveryError) -> None:
        """Remember why `broker` could not be reached, as the most recent failure."""
        self._failures.pop(broker, None)
        self._failures[broker] = error

    def broker_behind(self, local_address: str) -> str:
        """The broker a "127.0.0.1:port" listener leads to (the address itself if it is not one of this route's)."""
        match = _LOCAL_ADDRESS.fullmatch(local_address)
        return self._brokers.get(int(match[1]), local_address) if match else local_address

    def unmask(self, text: str) -> str:
        """`text` with each listener's address replaced by the broker it leads to (for librdkafka's error texts)."""
        return _LOCAL_ADDRESS.sub(lambda match: self.broker_behind(match[0]), text)

    def close(self) -> None:
        """Stop listening and close every connection made through this route."""
        with self._lock:
            self.closed = True
            sockets, self._sockets = self._sockets, []
        self._connector.release(self, sockets)


class KafkaConnector:
    """The thread and event loop that serve every route's listeners and relay their connections."""

    def __init__(self, resolve: Resolver = resolve_allowed) -> None:
        """Serve routes, resolving and checking broker names with `resolve` (the address guard)."""
        self.counts = ConnectorCounts()
        self.open_routes: set[BrokerRoute] = set()  # read from other threads: replaced, never changed in place
        self._resolve = resolve
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._listening: dict[BrokerRoute, list[tuple[socket.socket, BrokerTarget]]] = {}  # to serve again on a restart
        self._servers: dict[BrokerRoute, list[asyncio.Server]] = {}
        # Listening sockets given to the loop, and those still waiting for their server (connector thread only).
        self._scheduled: set[socket.socket] = set()
        self._unserved: set[socket.socket] = set()
        self._connections: dict[BrokerRoute, set[asyncio.StreamWriter]] = {}
        self._logged: set[str] = set()

    def route(self, allow: tuple[IPNetwork, ...], tls: ssl.SSLContext | None, connect_timeout_s: float) -> BrokerRoute:
        """A new route for one producer."""
        route = BrokerRoute(self, allow, tls, connect_timeout_s)
        with self._lock:
            self.open_routes = {*self.open_routes, route}
        return route

    def serve(self, route: BrokerRoute, listening: socket.socket, broker: BrokerTarget) -> None:
        """Accept connections on `listening` (from any thread), relaying each to `broker` once checked."""
        with self._lock:
            self._listening.setdefault(route, []).append((listening, broker))
        self._start(self._running_loop(), route, listening, broker)

    def _start(
        self, loop: asyncio.AbstractEventLoop, route: BrokerRoute, listening: socket.socket, broker: BrokerTarget
    ) -> None:
        """Serve `listening` on `loop`; until then, the kernel queues librdkafka's connections."""

        async def start() -> None:
            if listening not in self._unserved:
                return  # its route closed first, and the socket with it
            # From here the server owns the socket: a route closing meanwhile is seen below.
            self._unserved.discard(listening)
            server = await asyncio.start_server(Relay(self, route, broker).run, sock=listening, limit=READ_SIZE)
            if route.closed:
                server.close()
            else:
                self._servers.setdefault(route, []).append(server)

        def schedule() -> None:
            # Once per loop: a listener registered as the loop starts is offered twice, by `serve` and by `_run`.
            if listening not in self._scheduled:
                self._scheduled.add(listening)
                self._unserved.add(listening)
                loop.create_task(start())

        loop.call_soon_threadsafe(schedule)

    def release(self, route: BrokerRoute, sockets: list[socket.socket]) -> None:
        """Close a route's servers and connections (from any thread); its ports refuse connections on return."""
        with self._lock:
            self.open_routes = self.open_routes - {route}
            self._listening.pop(route, None)
        loop = self._loop
        unserved_by_any_loop = loop is None or loop.is_closed()
        closed = threading.Event()

        def close() -> None:
            for server in self._servers.pop(route, []):
                server.close()
            for writer in self._connections.pop(route, set()):
                writer.close()
            for listening in sockets:
                self._scheduled.discard(listening)
                if unserved_by_any_loop or listening in self._unserved:
                    self._unserved.discard(listening)
                    listening.close()
            closed.set()

        if loop is None or unserved_by_any_loop or threading.current_thread() is self._thread:
            close()
        else:
            loop.call_soon_threadsafe(close)
            # A moment at most: the connector's loop never blocks.
            closed.wait(_RELEASE_WAIT_S)

    def track(self, route: BrokerRoute, writer: asyncio.StreamWriter) -> Callable[[], None]:
        """Remember a connection of `route` until the returned function is called (connector thread)."""
        connections = self._connections.setdefault(route, set())
        connections.add(writer)
        return lambda: connections.discard(writer)

    async def dial(self, route: BrokerRoute, host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Resolve `host` now, check every address, and connect to a checked one (with TLS if the route has it)."""
        async with asyncio.timeout(route.connect_timeout_s):
            addresses = await self._resolve(host, port, route.allow)
            error: OSError = OSError(f"{host} has no address")
            for address in addresses:
                try:
                    return await asyncio.open_connection(
                        str(address.address),
                        address.port,
                        family=address.family,
                        ssl=route.tls,
                        server_hostname=host if route.tls is not None else None,
                        limit=READ_SIZE,
                    )
                except ssl.SSLError:
                    raise
                except OSError as exc:
                    error = exc
            raise error

    def log_once(self, kind: str, message: str, *args: object, error: BaseException | None = None) -> None:
        """Log a kind of fault the first time it happens here, with `error`'s traceback (the counts show the rest)."""
        if kind not in self._logged:
            self._logged.add(kind)
            logger.warning(message, *args, exc_info=error)

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="chargewire-kafka-connector", daemon=True)
                self._thread.start()
        self._started.wait()
        loop = self._loop
        if loop is None:
            raise RuntimeError("the Kafka connector's loop did not start")
        return loop

    def _run(self) -> None:
        """The connector's thread: its loop, restarted with every open listener if it ever dies."""
        while True:
            loop = asyncio.new_event_loop()
            loop.set_exception_handler(self._loop_fault)
            with self._lock:
                self._loop = loop
                listening = [(route, *entry) for route, entries in self._listening.items() for entry in entries]
            for route, sock, broker in listening:
                self._start(loop, route, sock, broker)
            self._started.set()
            try:
                loop.run_forever()
                return
            except Exception:
                self.counts.faults += 1
                logger.exception("The Kafka connector's loop died; restarting it (its connections are lost)")
                self._servers.clear()
                self._connections.clear()
                self._scheduled.clear()
                self._unserved.clear()
            finally:
                loop.close()

    def _loop_fault(self, loop: asyncio.AbstractEventLoop, context: dict[str, object]) -> None:
        self.counts.faults += 1
        error = context.get("exception")
        fault = error if isinstance(error, BaseException) else None
        self.log_once("loop", "A fault in the Kafka connector: %s", context.get("message"), error=fault)


_shared: KafkaConnector | None = None
_shared_lock = threading.Lock()


def shared_connector() -> KafkaConnector:
    """The process's connector, made on first use (its thread starts with its first listener)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = KafkaConnector()
        return _shared
