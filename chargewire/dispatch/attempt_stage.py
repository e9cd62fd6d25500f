"""The attempt stage: send deliveries of one subscription through its channel and make the records of the outcomes.

The dispatcher runs it for claimed and handed-off deliveries, and the Kafka streamer for streamed ones (its
`Attempter`), so every attempt reaches the circuit breaker and the listeners (metrics, live views) the same way.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import cast

from chargewire.channels.base import AttemptResult, BatchChannel, Channel, OrderFence, OutboundMessage
from chargewire.clock import utcnow
from chargewire.config import Settings
from chargewire.dispatch.breaker import CircuitBreakers
from chargewire.dispatch.outcomes import record_for
from chargewire.dispatch.retry_policy import next_attempt_delay
from chargewire.dispatch.targets import DeliveryTarget
from chargewire.errors import DeliveryError, PermanentDeliveryError
from chargewire.ids import new_ids
from chargewire.store.delivery_records import AttemptRecord, ClaimedDelivery

# Called once per dispatch with its deliveries, their results and their records, in the same order.
AttemptListener = Callable[[Sequence[ClaimedDelivery], Sequence[AttemptResult], Sequence[AttemptRecord]], None]


class AttemptStage:
    """Sends through the channels by name, and tells the breakers and listeners of every outcome."""

    def __init__(
        self,
        settings: Settings,
        channels: Mapping[str, Channel],
        breakers: CircuitBreakers,
        worker_id: str,
        rng: random.Random,
        batching: frozenset[str],
        retry_floors_s: Mapping[str, float],
    ) -> None:
        self.settings = settings
        self._channels = channels
        self._breakers = breakers
        self._worker_id = worker_id
        self._rng = rng
        self._retry_floors_s = retry_floors_s
        self._batching = batching  # the channels that send many messages in one call (`BatchChannel`)
        self._listeners: list[AttemptListener] = []

    def add_listener(self, listener: AttemptListener) -> None:
        """Call `listener` after every attempt (metrics, live views)."""
        self._listeners.append(listener)

    async def attempt(
        self, batch: list[ClaimedDelivery], target: DeliveryTarget | None, fence: OrderFence | None = None
    ) -> list[AttemptRecord]:
        """Attempt deliveries of one subscription; the records of their outcomes, for the caller to write.

        `fence` keeps batches in flight together in order (`OrderFence`); only batch channels take one.
        """
        # One coroutine from here to the channel's send: a frame per step (and the async list comprehension one
        # was) is resumed on every wake-up of the attempt.
        results: list[AttemptResult]
        if target is None:
            results = _failed(batch, PermanentDeliveryError("The subscription no longer exists.", error_class="gone"))
        elif target.unusable is not None:
            results = _failed(batch, target.unusable)
        else:
            via = target.subscription.via
            channel = self._channels[via]
            if via in self._batching:
                messages = [self._message(delivery, target) for delivery in batch]
                results = await cast(BatchChannel, channel).send_batch(messages, fence)
            else:
                results = []
                for delivery in batch:
                    results.append(await channel.send(self._message(delivery, target)))
        attempt_ids = new_ids("att", len(batch))
        records = []
        for delivery, result, attempt_id in zip(batch, results, attempt_ids, strict=True):
            records.append(self._record(delivery, result, target, attempt_id))
        for listener in self._listeners:
            listener(batch, results, records)
        return records

    def _message(self, delivery: ClaimedDelivery, target: DeliveryTarget) -> OutboundMessage:
        return OutboundMessage(
            delivery_id=delivery.id,
            event_id=delivery.event_id,
            event_name=delivery.event_name,
            payload=delivery.payload,
            entity_id=delivery.entity_id,
            subscription=target.subscription,
            attempt_number=delivery.attempt_count + 1,
            tenant=self.settings.tenant,
            token_text=target.token_text,
            signing_secrets=target.signing_secrets,
        )

    def _record(
        self, delivery: ClaimedDelivery, result: AttemptResult, target: DeliveryTarget | None, attempt_id: str
    ) -> AttemptRecord:
        """The record of one outcome, once the breaker has heard of it; a failure gets its retry time here."""
        if result.error is None:
            self._breakers.record_success(delivery.subscription_id)
            return record_for(delivery, result, attempt_id, self._worker_id, None)
        override = target.subscription.retry_schedule_s if target is not None else None
        schedule = override or self.settings.retry_schedule_s
        delay = next_attempt_delay(
            delivery.attempt_count + 1,
            schedule,
            self.settings.retry_jitter,
            result.error,
            rng=self._rng,
            retry_after_cap_s=self.settings.retry_after_cap_s,
            attempt_limit=delivery.attempt_limit,
            min_delay_s=self._retry_floors_s.get(target.subscription.via, 0.0) if target is not None else 0.0,
        )
        retry_at = None if delay is None else utcnow() + timedelta(seconds=delay)
        self._breakers.record_failure(delivery.subscription_id, result.error, schedule, utcnow())
        return record_for(delivery, result, attempt_id, self._worker_id, retry_at)


def _failed(batch: list[ClaimedDelivery], error: DeliveryError) -> list[AttemptResult]:
    """The results of deliveries that cannot be sent (their subscription is gone, or its configuration unusable)."""
    return [AttemptResult(started_at=utcnow(), duration_ms=0.0, error=error) for _delivery in batch]
