"""Resend: queue a subscription's failed deliveries of some events for one more attempt each.

A subscription can be resent at most once per cooldown (15 minutes by default) and not while disabled;
both are a Conflict. Each failed delivery created in the window gets exactly one more attempt; if that
fails too, it goes back to failed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime

from chargewire.clock import utcnow
from chargewire.errors import Conflict, ValidationFailed
from chargewire.services.subscription_spec import parse_event_names
from chargewire.services.subscriptions import Caller, SubscriptionService
from chargewire.store.delivery_store import DeliveryStore
from chargewire.store.subscription_store import SubscriptionStore

logger = logging.getLogger(__name__)


class ResendService:
    """Resends failed notifications of one subscription."""

    def __init__(
        self,
        subscriptions: SubscriptionService,
        store: SubscriptionStore,
        deliveries: DeliveryStore,
        cooldown_s: float,
        *,
        on_due: Callable[[], None],
    ) -> None:
        self._subscriptions = subscriptions
        self._store = store
        self._deliveries = deliveries
        self._cooldown_s = cooldown_s
        self._on_due = on_due

    async def resend(
        self,
        caller: Caller,
        subscription_id: str,
        notifications: Sequence[object],
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> int:
        """Queue the failed deliveries of `notifications` created in [start, end]; returns how many.

        Raises NotFound, PermissionDenied, ValidationFailed (unknown names, start after end) or Conflict
        (disabled, or resent within the cooldown).
        """
        subscription = await self._subscriptions.get(caller, subscription_id)
        names = parse_event_names(list(notifications), "notifications")
        if start is not None and end is not None and start > end:
            raise ValidationFailed({"endTime": ["The end time must be a date after or equal to the start time."]})
        if not subscription.enabled:
            raise Conflict(f"Subscription {subscription_id} is disabled; enable it before resending.")
        now = utcnow()
        # Claim the cooldown slot first: of two concurrent resends exactly one passes, at the price that a
        # crash between the claim and the requeue costs one window.
        if not await self._store.claim_resend(subscription_id, now, self._cooldown_s):
            minutes = self._cooldown_s / 60
            raise Conflict(f"Subscription {subscription_id} was resent less than {minutes:g} minutes ago.")
        queued = await self._deliveries.requeue_failed(subscription_id, names, start, end, now)
        if queued:
            # Due now, and committed: workers need not wait for their next poll to find them.
            self._on_due()
        logger.info("resend of subscription %s queued %d deliveries", subscription_id, queued)
        return queued
