"""One relayed connection: librdkafka's side, accepted on a route's listener, to the broker behind it, checked.

`Relay.run` dials the broker through the connector (resolved and checked then, `KafkaConnector.dial`), then
passes bytes both ways: requests watched for their Metadata ones (`frames.RequestWatch`), responses with their
brokers relocated (`frames.ResponseRewrite`). Whatever ends the connection without a reply the subscriber can
act on (a blocked address, TLS, an unreadable response) is noted on the route, for the channel to report.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from chargewire.channels.address_guard import BlockedAddress
from chargewire.errors import DeliveryError, RetryableDeliveryError
from chargewire.kafka.frames import RequestWatch, ResponseRewrite
from chargewire.kafka.metadata_rewrite import UnreadableResponse

if TYPE_CHECKING:
    from chargewire.kafka.connector import BrokerRoute, KafkaConnector

logger = logging.getLogger(__name__)

READ_SIZE = 256 * 1024


@dataclass(frozen=True, slots=True)
class BrokerTarget:
    """Where a listener leads: a broker the subscription names (bootstrap) or the cluster advertises."""

    host: str
    port: int
    advertised: bool

    @property
    def refusal(self) -> str:
        """Why its connections are refused when it is on a blocked address (what it resolves to left out)."""
        name = broker_name(self.host, self.port)
        if self.advertised:
            return f"The cluster advertises a broker at a blocked address, {name}; no connection was made to it."
        return f"The broker {name} is, or resolves to, a blocked address (one that is not public)."


class Relay:
    """Relays each connection accepted on one listener to the broker it leads to."""

    def __init__(self, connector: KafkaConnector, route: BrokerRoute, broker: BrokerTarget) -> None:
        self._connector = connector
        self._route = route
        self._target = broker
        self._broker = broker_name(broker.host, broker.port)

    async def run(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        """Connect to the broker, checked, then pass bytes both ways until either side closes."""
        untrack = self._connector.track(self._route, client_writer)
        try:
            upstream = await self._dial()
            if upstream is not None:
                await self._relay(client_reader, client_writer, *upstream)
        except Exception as fault:
            self._connector.counts.faults += 1
            self._connector.log_once(
                "relay", "The Kafka connector failed relaying a connection to %s", self._broker, error=fault
            )
        finally:
            untrack()
            client_writer.close()

    async def _dial(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        try:
            upstream = await self._connector.dial(self._route, self._target.host, self._target.port)
        except BlockedAddress as exc:
            refusal = BlockedAddress(self._target.refusal, address=exc.address, reason=exc.reason)
            self._refuse("blocked_address", refusal)
            logger.warning("Kafka connection to %s refused: %s (%s)", self._broker, exc.address, exc.reason)
            return None
        except ssl.SSLError as exc:
            self._refuse_tls(exc)
            return None
        except (OSError, TimeoutError, ValueError):
            unreachable = RetryableDeliveryError("No broker could be reached.", error_class="unreachable")
            self._refuse("unreachable", unreachable)
            return None
        self._connector.counts.opened += 1
        self._route.note_connected(self._broker)
        return upstream

    async def _relay(
        self,
        client_reader: asyncio.StreamReader,
        client_writer: asyncio.StreamWriter,
        broker_reader: asyncio.StreamReader,
        broker_writer: asyncio.StreamWriter,
    ) -> None:
        watch = RequestWatch()
        rewrite = ResponseRewrite(watch, self._route.listener_for)
        untrack = self._connector.track(self._route, broker_writer)
        requests = asyncio.create_task(pump_through(client_reader, broker_writer, watched(watch)))
        responses = asyncio.create_task(pump_through(broker_reader, client_writer, rewrite.feed))
        try:
            done, _pending = await asyncio.wait((requests, responses), return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                self._note_end(task.exception())
        finally:
            for task in (requests, responses):
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.gather(requests, responses, return_exceptions=True)
            untrack()
            broker_writer.close()

    def _note_end(self, error: BaseException | None) -> None:
        if isinstance(error, ssl.SSLError):
            self._refuse_tls(error)  # TLS 1.3: the broker refuses a client certificate after the handshake
        elif isinstance(error, UnreadableResponse):
            message = f"The connection to the broker {self._broker} was closed: {error}."
            self._refuse("unreadable", RetryableDeliveryError(message, error_class="kafka"))
            self._connector.log_once("unreadable", "Kafka connection to %s closed: %s", self._broker, error)

    def _refuse_tls(self, exc: ssl.SSLError) -> None:
        reason = getattr(exc, "verify_message", None) or exc.reason or "handshake failed"
        error = RetryableDeliveryError(f"TLS failed with the broker {self._broker}: {reason}.", error_class="tls")
        self._refuse("tls", error)

    def _refuse(self, reason: str, error: DeliveryError) -> None:
        self._connector.counts.refused[reason] += 1
        self._route.note_failure(self._broker, error)


def watched(watch: RequestWatch) -> Callable[[bytes], list[bytes]]:
    def feed(data: bytes) -> list[bytes]:
        watch.feed(data)  # noted before it is sent: the response cannot come before its request is known
        return [data]

    return feed


_Feed = Callable[[bytes], list[bytes]]


async def pump_through(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, feed: _Feed) -> None:
    """Pass what `reader` gives to `writer`, through `feed`, until `reader` ends."""
    while data := await reader.read(READ_SIZE):
        writer.writelines(feed(data))
        await writer.drain()


def broker_name(host: str, port: int) -> str:
    """A broker as a subscription writes it: "host:port", an IPv6 address in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
