"""The Kafka channel: one record per attempt, produced to the subscription's topic; the broker's ack decides.

A record carries the stored payload bytes as its value and the id of the entity the event is about as its
key (`docs/kafka-record-keys.md`), or the delivery id when the event names no entity, so one entity's events
stay in order on one partition. Its headers are those of a webhook minus the HTTP ones, plus `notification`:
`notification`, `webhook-id`, `webhook-timestamp`, `webhook-signature`, `X-Signature`, `X-Timestamp`,
`X-Tenant`, `X-Webhook-Id`, `X-Webhook-Type` (`chargewire.channels.signing.message_headers`).

Failures come back as typed errors in the `AttemptResult`, never raised; `delivery_errors` tables their classes.

The address guard (`channels.address_guard`) is applied where librdkafka connects: librdkafka dials only the
loopback listeners of the guarded connector (`connector`), which resolves each broker's name when librdkafka
connects, checks every address, and connects to exactly a checked one, or closes librdkafka's connection and
leaves the reason for this channel to report (`blocked_address`, `tls`). The brokers a cluster advertises reach
librdkafka only rewritten to listeners of their own, so they are checked the same way. A name re-pointed after
any check (DNS rebinding) gets no connection. Before producing, the channel checks too, for a clear and early
answer (`broker_checks`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import datetime

from chargewire.channels.address_guard import BlockedAddress, IPNetwork
from chargewire.channels.base import AttemptResult, OrderFence, OutboundMessage
from chargewire.channels.signing import message_headers
from chargewire.clock import utcnow
from chargewire.errors import DeliveryError, PermanentDeliveryError, RetryableDeliveryError
from chargewire.kafka.acks import PendingAcks, Record, RecordAck, RecordOutcome
from chargewire.kafka.broker_checks import AdvertisedBrokers, check_resolves_allowed
from chargewire.kafka.clusters import ClusterConfig
from chargewire.kafka.delivery_errors import refusal_like, translate
from chargewire.kafka.producers import KafkaProducers
from chargewire.models import KafkaSecrets, KafkaTarget, Subscription

logger = logging.getLogger(__name__)

SecretsLookup = Callable[[str], Awaitable[KafkaSecrets | None]]


class KafkaChannel:
    """Delivers messages as Kafka records through producers shared by subscriptions with the same cluster."""

    def __init__(
        self,
        secrets_for: SecretsLookup,
        *,
        producers: KafkaProducers | None = None,
        allow_networks: Iterable[IPNetwork] = (),
    ) -> None:
        """Configure the channel; producers open on the first record for each cluster.

        Args:
            secrets_for: subscription id -> its SASL password and client key (`SubscriptionStore.kafka_secrets`).
            producers: the producer pool with its timeouts; by default 10 s per record, 5 s to connect.
            allow_networks: non-public networks brokers may resolve into despite the address guard.
        """
        self._secrets_for = secrets_for
        self._producers = producers or KafkaProducers()
        self._allow_networks = tuple(allow_networks)
        self._producers.allow_networks = self._allow_networks
        # Subscription id -> (its updated_at when read, cluster with secrets): a PUT changes updated_at, so a
        # new password is read on the next attempt without a database round trip on every record.
        self._clusters: dict[str, tuple[datetime, ClusterConfig]] = {}
        self._advertised = AdvertisedBrokers(self._producers, self._allow_networks)
        self._order = _FifoLocks()
        # Per subscription, the records it handed over last, until they are answered (see `_wait_for_stranded`).
        self._last_handed: dict[str, PendingAcks] = {}

    @property
    def producers(self) -> KafkaProducers:
        """The producer pool (for inspection: which clusters have an open producer)."""
        return self._producers

    async def send(self, message: OutboundMessage) -> AttemptResult:
        """Produce the message to its subscription's topic and wait for the ack; never raises for delivery failures."""
        (result,) = await self.send_batch([message])
        return result

    async def send_batch(
        self, messages: Sequence[OutboundMessage], fence: OrderFence | None = None
    ) -> list[AttemptResult]:
        """Produce messages of one subscription in order and wait for every ack; one result per message.

        With a broken `fence`, nothing is produced and every message fails as `held_back`; a failed record
        breaks it.
        """
        started_at = utcnow()
        clock = time.perf_counter()
        subscription = messages[0].subscription
        try:
            target = _target_of(subscription)
            prepared = [_prepare(message, target.topic, started_at) for message in messages]
            records = [record for record, _shown in prepared if isinstance(record, Record)]
            # Held in call order (asyncio locks are FIFO) until librdkafka has the records, so batches sent one
            # after the other for a subscription are written in that order, even when a secrets read suspends.
            async with self._order.hold(subscription.id):
                cluster = await self._cluster_of(subscription, target)
                refusal = await self._advertised.refusal(cluster, target.topic, clock)
                if refusal is not None:
                    # Left open, librdkafka would go on connecting to the brokers it knows, refused or not.
                    self._producers.discard(cluster)
                    # A fresh error each time: raising the cached one would grow its traceback on every attempt.
                    raise refusal_like(refusal)
                await self._wait_for_stranded(subscription.id)
                if fence is not None and fence.broken:
                    raise RetryableDeliveryError(
                        "Not produced: an earlier record of this subscription failed, and this one goes after it.",
                        error_class="held_back",
                    )
                pending = await self._producers.enqueue(cluster, target.topic, records)
                self._last_handed[subscription.id] = pending
            # No timer of our own: librdkafka answers every record by `message_timeout_s`, and the pool fails
            # whatever is left if a producer closes.
            outcomes = await pending.outcomes()
            if self._last_handed.get(subscription.id) is pending:
                del self._last_handed[subscription.id]
            if fence is not None and not all(isinstance(outcome, RecordAck) for outcome in outcomes):
                fence.broken = True
            acks = iter(outcomes)
        except Exception as exc:
            if fence is not None:
                fence.broken = True
            error = translate(exc)
            if error.error_class == "internal":
                logger.exception("Kafka delivery of %d records failed inside chargewire", len(messages))
            return [AttemptResult(started_at, _elapsed_ms(clock), error) for _message in messages]
        duration_ms = _elapsed_ms(clock)
        return [
            _result(record if isinstance(record, DeliveryError) else next(acks), shown, started_at, duration_ms)
            for record, shown in prepared
        ]

    async def _wait_for_stranded(self, subscription_id: str) -> None:
        """Wait until the subscription's last records are answered, if they wait on a producer that retired.

        Its successor would produce the next ones at once, and they could land before the retired one's
        records, which may still be acknowledged, or fail and be retried after them.
        """
        last = self._last_handed.get(subscription_id)
        if last is not None and last.stranded:
            await last.outcomes()

    async def aclose(self) -> None:
        """Flush and close every producer."""
        await self._producers.aclose()
        self._clusters.clear()
        self._advertised.clear()

    async def _cluster_of(self, subscription: Subscription, target: KafkaTarget) -> ClusterConfig:
        # Checked on every attempt, never remembered: a name may point somewhere else by now.
        try:
            for broker in target.brokers:
                await check_resolves_allowed(broker, self._allow_networks)
        except BlockedAddress:
            known = self._clusters.pop(subscription.id, None)
            if known is not None:  # a name re-pointed since: librdkafka would reconnect to where it points now
                self._producers.discard(known[1])
            raise
        cached = self._clusters.get(subscription.id)
        if cached is not None and cached[0] == subscription.updated_at:
            return cached[1]
        cluster = ClusterConfig.for_target(target, await self._secrets_for(subscription.id))
        self._clusters[subscription.id] = (subscription.updated_at, cluster)
        return cluster


def _target_of(subscription: Subscription) -> KafkaTarget:
    target = subscription.kafka
    if target is None or not target.topic:
        raise PermanentDeliveryError("The subscription has no Kafka topic.", error_class="invalid_target")
    if not target.brokers:
        raise PermanentDeliveryError("The subscription names no Kafka brokers.", error_class="invalid_target")
    return target


def _prepare(message: OutboundMessage, topic: str, now: datetime) -> tuple[Record | DeliveryError, dict[str, str]]:
    """The record for a message, or why it cannot be sent, with the headers its attempt log shows."""
    key = message.entity_id or message.delivery_id
    try:
        signed = message_headers(message, now)
    except ValueError as exc:
        error = PermanentDeliveryError(f"The message could not be signed: {exc}.", error_class="signing")
        return error, {}
    # librdkafka encodes str header values as UTF-8 itself.
    record = Record(key.encode(), message.payload, [("notification", message.event_name), *signed.items()])
    return record, {"notification": message.event_name, **signed, "kafka-topic": topic, "kafka-key": key}


def _result(
    outcome: RecordOutcome | DeliveryError, shown: dict[str, str], started_at: datetime, duration_ms: float
) -> AttemptResult:
    if isinstance(outcome, RecordAck):
        return AttemptResult(
            started_at,
            duration_ms,
            request_headers=shown,
            response_headers={"kafka-partition": str(outcome.partition), "kafka-offset": str(outcome.offset)},
        )
    error = outcome if isinstance(outcome, DeliveryError) else translate(outcome)
    return AttemptResult(started_at, duration_ms, error, request_headers=shown)


def _elapsed_ms(clock: float) -> float:
    return round((time.perf_counter() - clock) * 1000, 3)


class _FifoLocks:
    """One FIFO lock per key, dropped when nobody holds or awaits it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    def hold(self, key: str) -> _Held:
        """Hold the lock of `key`; callers get it in the order they asked."""
        return _Held(self._locks, key)


class _Held:
    """`async with` one key's lock (a class, not a generator: it runs once per record)."""

    __slots__ = ("_key", "_lock", "_locks")

    def __init__(self, locks: dict[str, tuple[asyncio.Lock, int]], key: str) -> None:
        self._locks = locks
        self._key = key
        lock, users = locks.get(key) or (asyncio.Lock(), 0)
        locks[key] = (lock, users + 1)
        self._lock = lock

    async def __aenter__(self) -> None:
        await self._lock.acquire()

    async def __aexit__(self, *exc_info: object) -> None:
        self._lock.release()
        lock, users = self._locks[self._key]
        if users == 1:
            del self._locks[self._key]
        else:
            self._locks[self._key] = (lock, users - 1)
