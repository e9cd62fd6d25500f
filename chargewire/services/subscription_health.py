"""Disabling subscriptions that keep failing, and telling whoever subscribed to `subscription.disabled`."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from chargewire.channels.signing import x_timestamp
from chargewire.models import Subscription, Via
from chargewire.services.publish import Publisher
from chargewire.store.subscription_store import SubscriptionStore

logger = logging.getLogger(__name__)

DISABLED_EVENT = "subscription.disabled"


class SubscriptionHealth:
    """Disables a subscription once every delivery to it has failed for `disable_after_failing_s`."""

    def __init__(self, store: SubscriptionStore, publisher: Publisher, disable_after_failing_s: float) -> None:
        self._store = store
        self._publisher = publisher
        self._disable_after = timedelta(seconds=disable_after_failing_s)

    async def disable_failing(self, now: datetime) -> list[Subscription]:
        """Disable what has failed for too long and publish a `subscription.disabled` event for each."""
        disabled = await self._store.disable_failing(now - self._disable_after, now)
        if disabled:
            await self._publisher.publish(
                [self._event(subscription, now) for subscription in disabled], operational=True
            )
        for subscription in disabled:
            logger.warning("disabled subscription %s: failing since %s", subscription.id, subscription.failing_since)
        return disabled

    def _event(self, subscription: Subscription, now: datetime) -> dict[str, object]:
        failing_since = subscription.failing_since or now
        days = self._disable_after.total_seconds() / 86400
        target = subscription.callback_url if subscription.via is Via.WEBHOOK else _kafka_target(subscription)
        return {
            "notification": DISABLED_EVENT,
            "subscriptionId": subscription.id,
            "via": str(subscription.via),
            "target": target,
            "reason": f"Every delivery failed for {days:g} days; enable the subscription again to resume delivery.",
            "failingSince": x_timestamp(failing_since),
            "disabledAt": x_timestamp(now),
        }


def _kafka_target(subscription: Subscription) -> str:
    kafka = subscription.kafka
    return f"{kafka.topic} on {','.join(kafka.brokers)}" if kafka else ""
