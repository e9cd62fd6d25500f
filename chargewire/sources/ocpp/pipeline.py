"""Turning what the proxy observes into published events, off the forwarding path.

The proxy only parses and correlates frames, then offers each observation (a connection opened or closed,
an exchange completed, a charge point fell silent) to a bounded queue without waiting. One task takes them
in order, derives the events, checks each against the catalog and publishes them in batches (each gathers
for 20 ms) through the durable publish path. While the database is slow or down the queue absorbs
observations; once it is full new ones are dropped and counted
(`chargewire_ocpp_events_dropped{reason="queue full"}`), so memory stays bounded and forwarding never waits
for the database. The identity registry is in the database too: an observation whose registry writes meet an
outage is derived again, after a backoff, until they succeed (`chargewire_ocpp_registry_failures`), and those
behind it wait in the queue, in order. Frames are forwarded on the same event loop, so the task never derives
for long without letting the loop forward them: a backlog is derived a couple of milliseconds at a time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from chargewire.catalog import validate
from chargewire.errors import ValidationFailed
from chargewire.sources.ocpp import v16, v201
from chargewire.sources.ocpp.correlation import Correlator, Direction, Exchange
from chargewire.sources.ocpp.derivation import Context, Handler, Payload
from chargewire.sources.ocpp.mapping import now
from chargewire.sources.ocpp.metrics import TapMetrics
from chargewire.sources.ocpp.registry import Registry
from chargewire.sources.ocpp.schemas import OCPP16, OCPP201, is_valid_call, is_valid_result
from chargewire.store.outage import is_unavailable

logger = logging.getLogger(__name__)

_HANDLERS: dict[str, dict[Direction, dict[str, Handler]]] = {
    OCPP16: {Direction.FROM_CHARGE_POINT: v16.CHARGE_POINT_CALLS, Direction.FROM_CSMS: v16.CSMS_CALLS},
    OCPP201: {Direction.FROM_CHARGE_POINT: v201.CHARGE_POINT_CALLS, Direction.FROM_CSMS: v201.CSMS_CALLS},
}
_RETRY_FIRST_S = 0.5
# How long the first observation of a batch waits for others: events are published that much later (frames
# never wait), and at 1,750 exchanges/s a publish carries ~70 events instead of 2 (bench-ocpp: one publish
# per exchange took more CPU than forwarding).
_GATHER_S = 0.02
_RETRY_MAX_S = 30.0
# The longest the task derives before it lets the event loop forward frames: a derivation served from the
# registry's memory never waits, and bench-ocpp's paced run, which falls behind the registry's writes, derived
# backlogs of 1,000 events in one go with the frames waiting behind them.
_SLICE_S = 0.002


@dataclass(eq=False, slots=True)
class Link:
    """One charge point's connection through the tap, as both the proxy and the pipeline see it."""

    identity: str
    version: str | None
    correlator: Correlator = field(default_factory=Correlator)
    charge_point_id: int | None = None
    heartbeat_interval_s: float | None = None
    last_frame_at: float = 0.0
    silent: bool = False


class Change(StrEnum):
    """What happened to a link, besides its exchanges."""

    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    SILENT = "silent"
    HEARD_AGAIN = "heard again"
    LONG_GONE = "long gone"


@dataclass(frozen=True, slots=True)
class Observation:
    """One item of the queue: an exchange of a link, or a change of its state."""

    link: Link
    exchange: Exchange | None = None
    change: Change | None = None


_NETWORK_STATUS = {
    Change.CONNECTED: "available",
    Change.HEARD_AGAIN: "available",
    Change.DISCONNECTED: "temporarily unavailable",
    Change.SILENT: "temporarily unavailable",
    Change.LONG_GONE: "long-term unavailable",
}


class _Slices:
    """Lets derivations run for `_SLICE_S` at a time, then the event loop forward frames, then the next slice.

    Each slice admits at least one derivation, so the batch moves on however short the slice.
    """

    def __init__(self) -> None:
        self._end = 0.0
        self._admitted = False
        self._next: asyncio.Future[None] | None = None

    def start(self) -> None:
        """Begin a slice now."""
        self._end = time.perf_counter() + _SLICE_S
        self._admitted = False

    async def turn(self) -> None:
        """Return when a derivation may run: at once within the slice, else in a later one."""
        while self._admitted and time.perf_counter() > self._end:
            if self._next is None:
                self._next = asyncio.get_running_loop().create_future()
                asyncio.get_running_loop().call_soon(self._open_next)
            await self._next
        self._admitted = True

    def _open_next(self) -> None:
        waiting, self._next = self._next, None
        self.start()
        if waiting is not None:
            waiting.set_result(None)


class EventPipeline:
    """The bounded queue of observations and the task that publishes their events."""

    def __init__(
        self,
        registry: Registry,
        publish: Callable[[Sequence[Payload]], Awaitable[object]],
        metrics: TapMetrics,
        *,
        max_waiting: int,
        max_batch: int,
        long_term_unavailable_s: float,
    ) -> None:
        self._registry = registry
        self._publish = publish
        self._metrics = metrics
        self._queue: asyncio.Queue[Observation | None] = asyncio.Queue(max_waiting)
        self._max_batch = max_batch
        self._long_term_unavailable_s = long_term_unavailable_s
        self._long_term_timers: dict[str, asyncio.TimerHandle] = {}
        self._slices = _Slices()
        metrics.queue_depth = self._queue.qsize

    def offer(self, observation: Observation) -> None:
        """Queue an observation without waiting; dropped and counted when the queue is full."""
        try:
            self._queue.put_nowait(observation)
        except asyncio.QueueFull:
            if not self._metrics.events_dropped.get("queue full"):
                logger.error("OCPP tap: events are waiting for the database and the queue is full; dropping new ones")
            self._metrics.dropped("queue full")

    async def run(self) -> None:
        """Derive and publish until `close` is called; what is queued by then is published first."""
        closing = False
        while not closing:
            observation = await self._queue.get()
            if observation is None:
                return
            # Let a batch gather: one publish costs about as much as a hundred events in it.
            await asyncio.sleep(_GATHER_S)
            batch = [observation]
            while len(batch) < self._max_batch and not self._queue.empty():
                following = self._queue.get_nowait()
                if following is None:
                    closing = True
                    break
                batch.append(following)
            events = await self._derive_batch(batch)
            if events:
                await self._publish_retrying(events)

    async def _derive_batch(self, batch: list[Observation]) -> list[Payload]:
        """The events of `batch`, in its order: each charge point's observations in turn, the charge points side by
        side, so that their registry writes wait together (`registry_writes`: one transaction per round)."""
        derived: list[list[Payload]] = [[] for _ in batch]
        by_identity: dict[str, list[int]] = {}
        for position, observation in enumerate(batch):
            by_identity.setdefault(observation.link.identity, []).append(position)

        async def derive_in_turn(positions: list[int]) -> None:
            for position in positions:
                await self._slices.turn()
                derived[position] = await self._derive(batch[position])

        self._slices.start()
        await asyncio.gather(*(derive_in_turn(positions) for positions in by_identity.values()))
        return [event for events in derived for event in events]

    async def close(self) -> None:
        """Let the task publish what is queued and end."""
        for timer in self._long_term_timers.values():
            timer.cancel()
        await self._queue.put(None)

    async def _derive(self, observation: Observation) -> list[Payload]:
        """The events of one observation, retried through database outages; none if its mapping fails."""
        link = observation.link
        delay_s = _RETRY_FIRST_S
        while True:
            try:
                return await self._derive_once(observation)
            except ValidationFailed as rejected:
                self._metrics.reject(link.identity, f"not recorded: {rejected.message}")
                return []
            except Exception as error:
                if not is_unavailable(error):
                    # A mapping that cannot handle a frame fails alone; forwarding and other charge points go on.
                    logger.exception("OCPP tap: could not derive events for charge point %s", link.identity)
                    self._metrics.reject(link.identity, "derivation failed")
                    return []
                if delay_s == _RETRY_FIRST_S:
                    logger.error("OCPP tap: the registry is unavailable (%s); retrying, forwarding goes on", error)
                self._metrics.registry_failures += 1
            await asyncio.sleep(delay_s)
            delay_s = min(delay_s * 2, _RETRY_MAX_S)

    async def _derive_once(self, observation: Observation) -> list[Payload]:
        link = observation.link
        if observation.change is not None:
            return await self._changed(link, observation.change)
        if observation.exchange is not None:
            return self._checked(link, await self._exchanged(link, observation.exchange))
        return []

    async def _changed(self, link: Link, change: Change) -> list[Payload]:
        if change is Change.CONNECTED:
            link.charge_point_id = await self._registry.connected(link.identity, link.version)
            timer = self._long_term_timers.pop(link.identity, None)
            if timer is not None:
                timer.cancel()
        if link.charge_point_id is None:
            return []
        if change is Change.DISCONNECTED:
            await self._registry.disconnected(link.charge_point_id)
            self._long_term_timers[link.identity] = asyncio.get_running_loop().call_later(
                self._long_term_unavailable_s, self._long_gone, link
            )
        return [
            {
                "notification": "NetworkStatusNotification",
                "chargePointId": link.charge_point_id,
                "timestamp": now(),
                "networkStatus": _NETWORK_STATUS[change],
            }
        ]

    def _long_gone(self, link: Link) -> None:
        self._long_term_timers.pop(link.identity, None)
        self.offer(Observation(link, change=Change.LONG_GONE))

    async def _exchanged(self, link: Link, exchange: Exchange) -> list[Payload]:
        handler = _HANDLERS.get(link.version or "", {}).get(exchange.direction, {}).get(exchange.call.action)
        if link.charge_point_id is None:
            return []
        self._registry.heard_from(link.charge_point_id)
        if handler is None or exchange.result is None:
            return []
        call, result = exchange.call, exchange.result
        version = link.version or ""
        if not is_valid_call(version, call.action, call.payload):
            self._metrics.reject(link.identity, f"{call.action} fails its OCPP schema")
            return []
        if not is_valid_result(version, call.action, result.payload):
            self._metrics.reject(link.identity, f"{call.action} answer fails its OCPP schema")
            return []
        if call.action == "BootNotification" and result.payload.get("interval"):
            link.heartbeat_interval_s = float(result.payload["interval"])
        return await handler(Context(self._registry, link.charge_point_id), call.payload, result.payload)

    def _checked(self, link: Link, events: list[Payload]) -> list[Payload]:
        valid: list[Payload] = []
        for event in events:
            try:
                validate(event)
            except ValidationFailed as failure:
                self._metrics.reject(link.identity, f"{event.get('notification')} not valid: {failure.message}")
                continue
            valid.append(event)
        return valid

    async def _publish_retrying(self, events: list[Payload]) -> None:
        delay_s = _RETRY_FIRST_S
        for start in range(0, len(events), self._max_batch):
            chunk = events[start : start + self._max_batch]
            while True:
                try:
                    await self._publish(chunk)
                except Exception as error:
                    if self._metrics.publish_failures == 0 or delay_s == _RETRY_FIRST_S:
                        logger.error("OCPP tap: publishing failed (%s); retrying, forwarding goes on", error)
                    self._metrics.publish_failures += 1
                    await asyncio.sleep(delay_s)
                    delay_s = min(delay_s * 2, _RETRY_MAX_S)
                    continue
                self._metrics.events_published += len(chunk)
                delay_s = _RETRY_FIRST_S
                break
