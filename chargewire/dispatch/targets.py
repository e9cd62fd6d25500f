"""What the dispatcher needs to know about a subscription to send to it, and where it gets that from.

A subscription whose configuration cannot be used is still a target: an `unusable` one, whose deliveries fail
with that error, each recorded as an attempt, while every other subscription is delivered as usual.

| error_class            | raised as | when                                                                  |
|------------------------|-----------|-----------------------------------------------------------------------|
| `secret_undecryptable` | retryable | its token, signing or target secrets do not decrypt under this        |
|                        |           | CHARGEWIRE_SECRET_KEY (written under another one, e.g. by a CLI run   |
|                        |           | with a different key)                                                 |

Retryable on the normal schedule: the operator fixes it by starting the service with the right key, and the
next retry then delivers; a schedule run out leaves the deliveries failed and kept for resend. It is logged
once per subscription, when first seen, not with every delivery.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from chargewire.clock import utcnow
from chargewire.errors import DeliveryError, SecretUndecryptable
from chargewire.models import Subscription
from chargewire.security import SecretBox
from chargewire.store.subscription_store import SubscriptionStore
from chargewire.store.token_store import TokenStore

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DeliveryTarget:
    """A subscription with the decrypted keys that sign what is sent to it, or why it cannot be sent to."""

    subscription: Subscription
    token_text: str
    signing_secrets: tuple[str, ...]
    # Set when the subscription's configuration cannot be used: each of its deliveries fails with it.
    unusable: DeliveryError | None = None


class TargetSource(Protocol):
    """Looks up delivery targets by subscription id (missing ids are left out)."""

    async def targets(self, subscription_ids: Collection[str]) -> Mapping[str, DeliveryTarget]:
        """The targets of these subscriptions."""
        ...


class StoredTargets:
    """Targets read from the database and decrypted, and read and decrypted again only once they change.

    A target is taken as it is for `ttl_s`; after that one statement asks the `updated_at` of every target that
    is due (`SubscriptionStore.versions`), and only a subscription that changed (settings, enabled, secrets),
    is gone, or holds a signing secret that expired since, is read and decrypted again. With 1,000 webhook and
    Kafka subscriptions that made a refresh one statement and no decryption, where it was 4,000 statements and
    2,100 decryptions. An unusable target is read again every `ttl_s` as before: the error shows each time, and
    its first delivery after a fix goes out.
    """

    def __init__(
        self, subscriptions: SubscriptionStore, tokens: TokenStore, box: SecretBox, ttl_s: float = 5.0
    ) -> None:
        self._subscriptions = subscriptions
        self._tokens = tokens
        self._box = box
        self._ttl_s = ttl_s
        self._cache: dict[str, _Cached] = {}
        self._reported: set[str] = set()  # unusable subscriptions already logged

    async def targets(self, subscription_ids: Collection[str]) -> Mapping[str, DeliveryTarget]:
        """The targets of these subscriptions; deleted ones are left out."""
        now = time.monotonic()
        found: dict[str, DeliveryTarget] = {}
        due: list[str] = []
        for subscription_id in subscription_ids:
            cached = self._cache.get(subscription_id)
            if cached is not None and now - cached.checked_at < self._ttl_s:
                found[subscription_id] = cached.target
            else:
                due.append(subscription_id)
        if not due:  # all fresh, as nearly every attempt finds them: no coroutine to start for nothing
            return found
        unchanged = await self._unchanged(due)
        for subscription_id in due:
            cached = unchanged.get(subscription_id)
            if cached is None:
                cached = await self._load(subscription_id, now)
            else:
                cached.checked_at = now
            if cached is None:
                self._cache.pop(subscription_id, None)
                continue
            self._cache[subscription_id] = cached
            found[subscription_id] = cached.target
        return found

    async def _unchanged(self, subscription_ids: Collection[str]) -> dict[str, _Cached]:
        """The cached usable targets among these whose subscription has not changed since they were read."""
        usable = {
            subscription_id: cached
            for subscription_id in subscription_ids
            if (cached := self._cache.get(subscription_id)) is not None and cached.target.unusable is None
        }
        if not usable:
            return {}
        versions = await self._subscriptions.versions(usable)
        wall = utcnow()
        return {
            subscription_id: cached
            for subscription_id, cached in usable.items()
            if versions.get(subscription_id) == cached.target.subscription.updated_at
            and (cached.valid_until is None or wall < cached.valid_until)
        }

    async def _load(self, subscription_id: str, now: float) -> _Cached | None:
        subscription = await self._subscriptions.get_subscription(subscription_id)
        if subscription is None:
            return None
        token_ciphertext = await self._tokens.encrypted_token(subscription.token_id)
        if token_ciphertext is None:
            return None
        try:
            loaded = await self._decrypted(subscription, token_ciphertext, now)
        except SecretUndecryptable as exc:
            return _Cached(now, self._unusable(subscription, exc), None)
        self._reported.discard(subscription_id)
        return loaded

    async def _decrypted(self, subscription: Subscription, token_ciphertext: bytes, now: float) -> _Cached:
        secrets = await self._subscriptions.signing_secrets(subscription.id, utcnow())
        # The secret half of its target (Kafka's SASL password and client key, any channel's own) is read here,
        # though its channel reads it itself, so that keys that do not decrypt show as this subscription's own
        # error like the others. A webhook has none: its row answers without a decryption.
        await self._subscriptions.target_secrets(subscription.id)
        target = DeliveryTarget(
            subscription=subscription,
            token_text=self._box.decrypt(token_ciphertext),
            signing_secrets=tuple(secret.secret for secret in secrets),
        )
        # A rotated-out secret signs until it expires, and no write marks that moment: the target is read again.
        expiries = [secret.expires_at for secret in secrets if secret.expires_at is not None]
        return _Cached(now, target, min(expiries, default=None))

    def _unusable(self, subscription: Subscription, exc: SecretUndecryptable) -> DeliveryTarget:
        """A target whose deliveries fail with `secret_undecryptable`; logged once per subscription."""
        if subscription.id not in self._reported:
            self._reported.add(subscription.id)
            logger.error("subscription %s cannot be delivered to: %s", subscription.id, exc.message)
        unusable = exc.as_delivery_error()
        return DeliveryTarget(subscription=subscription, token_text="", signing_secrets=(), unusable=unusable)


@dataclass(slots=True)
class _Cached:
    """A target, when it was last found current (monotonic), and until when its signing secrets hold (wall)."""

    checked_at: float
    target: DeliveryTarget
    valid_until: datetime | None
