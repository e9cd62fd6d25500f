"""What the dispatcher needs to know about a subscription to send to it, and where it gets that from."""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Protocol

from chargewire.clock import utcnow
from chargewire.models import Subscription
from chargewire.security import SecretBox
from chargewire.store.subscription_store import SubscriptionStore
from chargewire.store.token_store import TokenStore


@dataclass(frozen=True, slots=True)
class DeliveryTarget:
    """A subscription with the decrypted keys that sign what is sent to it."""

    subscription: Subscription
    token_text: str
    signing_secrets: tuple[str, ...]


class TargetSource(Protocol):
    """Looks up delivery targets by subscription id (missing ids are left out)."""

    async def targets(self, subscription_ids: Collection[str]) -> Mapping[str, DeliveryTarget]:
        """The targets of these subscriptions."""
        ...


class StoredTargets:
    """Targets read from the database and decrypted, cached for a few seconds per subscription.

    The cache keeps decryption and lookups off the hot path; a changed subscription (URL, secrets, enabled)
    takes effect within `ttl_s`.
    """

    def __init__(
        self, subscriptions: SubscriptionStore, tokens: TokenStore, box: SecretBox, ttl_s: float = 5.0
    ) -> None:
        self._subscriptions = subscriptions
        self._tokens = tokens
        self._box = box
        self._ttl_s = ttl_s
        self._cache: dict[str, tuple[float, DeliveryTarget]] = {}

    async def targets(self, subscription_ids: Collection[str]) -> Mapping[str, DeliveryTarget]:
        """The targets of these subscriptions; deleted ones are left out."""
        now = time.monotonic()
        found: dict[str, DeliveryTarget] = {}
        for subscription_id in subscription_ids:
            cached = self._cache.get(subscription_id)
            if cached and now - cached[0] < self._ttl_s:
                found[subscription_id] = cached[1]
                continue
            target = await self._load(subscription_id)
            if target is None:
                self._cache.pop(subscription_id, None)
                continue
            self._cache[subscription_id] = (now, target)
            found[subscription_id] = target
        return found

    async def _load(self, subscription_id: str) -> DeliveryTarget | None:
        subscription = await self._subscriptions.get_subscription(subscription_id)
        if subscription is None:
            return None
        token_ciphertext = await self._tokens.encrypted_token(subscription.token_id)
        if token_ciphertext is None:
            return None
        secrets = await self._subscriptions.signing_secrets(subscription_id, utcnow())
        return DeliveryTarget(
            subscription=subscription,
            token_text=self._box.decrypt(token_ciphertext),
            signing_secrets=tuple(secret.secret for secret in secrets),
        )
