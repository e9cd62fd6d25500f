"""The address guard's checks before a Kafka record is produced: bootstrap brokers, and advertised ones.

The channel checks before producing, for a clear and early answer: the subscription's bootstrap brokers on
every attempt, and the brokers the cluster advertises in its metadata before its first record and again once
that verdict is `_ADVERTISED_RECHECK_S` old; one of them on a blocked address fails every message of the attempt
as `blocked_address`, and nothing is produced. Every check fails closed: a broker name that does not resolve,
metadata that does not come within the connect timeout, or a response the connector cannot read, fails the
attempt, and nothing is produced. Error texts name brokers as the subscription or the cluster wrote them: never
what a name resolved to, the connector's listeners, or whether a port refused or timed out.
"""

from __future__ import annotations

import asyncio
import logging
import time

from chargewire.channels.address_guard import BlockedAddress, IPNetwork, resolve_allowed
from chargewire.errors import RetryableDeliveryError
from chargewire.kafka.clusters import ClusterConfig
from chargewire.kafka.producers import KafkaProducers
from chargewire.models import split_broker

logger = logging.getLogger(__name__)

_RESOLVE_TIMEOUT_S = 5.0
# A cluster's advertised brokers can change; records may reach a newly advertised one for at most this long.
_ADVERTISED_RECHECK_S = 120.0
# perf_counter() time until which the verdict holds, and the refusal, if any.
_Verdict = tuple[float, BlockedAddress | None]


class AdvertisedBrokers:
    """The guard's verdict on the brokers each cluster advertises, held for `_ADVERTISED_RECHECK_S`."""

    def __init__(self, producers: KafkaProducers, allow_networks: tuple[IPNetwork, ...]) -> None:
        self._producers = producers
        self._allow_networks = allow_networks
        # What the guard said of each cluster's advertised brokers, and the checks under way (one per cluster,
        # however many subscriptions share it).
        self._verdicts: dict[ClusterConfig, _Verdict] = {}
        self._checks: dict[ClusterConfig, asyncio.Task[_Verdict]] = {}

    async def refusal(self, cluster: ClusterConfig, topic: str, clock: float) -> BlockedAddress | None:
        """Why `cluster`'s advertised brokers are refused, None if they are not; checked again once stale at `clock`."""
        verdict = self._verdicts.get(cluster)
        if verdict is None or verdict[0] <= clock:
            verdict = await self._check(cluster, topic)
        return verdict[1]

    def clear(self) -> None:
        """Forget every verdict: each cluster is checked again before its next record."""
        self._verdicts.clear()

    async def _check(self, cluster: ClusterConfig, topic: str) -> _Verdict:
        """The guard's verdict on the brokers `cluster` advertises, sharing a check already under way."""
        check = self._checks.get(cluster)
        if check is None:
            check = asyncio.create_task(self._judge(cluster, topic))
            self._checks[cluster] = check
            check.add_done_callback(lambda _: self._checks.pop(cluster, None))
        # Shielded: an attempt cancelled while waiting must not cancel the check other attempts wait for.
        return await asyncio.shield(check)

    async def _judge(self, cluster: ClusterConfig, topic: str) -> _Verdict:
        # Fails closed: no metadata (ProduceFailed) or an advertised name that does not resolve (here) raises,
        # and the attempt produces nothing; the next attempt asks again.
        advertised = await self._producers.advertised_brokers(cluster, topic)
        try:
            await asyncio.gather(*(_check_advertised_broker(broker, self._allow_networks) for broker in advertised))
        except BlockedAddress as refusal:
            logger.warning("Kafka cluster %s refused: %s (%s)", cluster.label, refusal.message, refusal.address)
            verdict: _Verdict = (time.perf_counter() + _ADVERTISED_RECHECK_S, refusal)
        else:
            verdict = (time.perf_counter() + _ADVERTISED_RECHECK_S, None)
        self._verdicts[cluster] = verdict
        return verdict


async def check_resolves_allowed(broker: str, allow: tuple[IPNetwork, ...]) -> None:
    """Raise `BlockedAddress` when `broker` is, or resolves to, a blocked address, and fail closed otherwise.

    A name that does not resolve (or that IDNA cannot encode: UnicodeError is a ValueError) could resolve to
    anything when librdkafka asks a moment later, so nothing is produced: `unreachable`, checked again on the
    next attempt.
    """
    try:
        host, port = split_broker(broker)
        async with asyncio.timeout(_RESOLVE_TIMEOUT_S):
            await resolve_allowed(host, port, allow)
    except (OSError, ValueError, TimeoutError) as exc:
        raise RetryableDeliveryError(
            f"The broker {broker} did not resolve; nothing was produced.", error_class="unreachable"
        ) from exc


async def _check_advertised_broker(broker: str, allow: tuple[IPNetwork, ...]) -> None:
    """As `check_resolves_allowed`, for a broker named by the cluster's metadata: the refusal says which one."""
    try:
        await check_resolves_allowed(broker, allow)
    except BlockedAddress as exc:
        raise BlockedAddress(
            f"The cluster advertises a broker at a blocked address, {broker}; nothing was produced.",
            address=exc.address,
            reason=exc.reason,
        ) from exc
