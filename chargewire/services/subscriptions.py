"""Subscriptions: subscribe, list, read, replace, unsubscribe, enable, and rotate the signing secret.

Who may do what: a token with `notifications:manage` sees and changes only the subscriptions it created
(PermissionDenied on another's); `admin` tokens and the operator (CLI, back office) see all of them. The
creating token is recorded because its text keys the `X-Signature` header of every delivery.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from ipaddress import IPv4Network, IPv6Network
from typing import Any

import orjson

from chargewire.channels.address_guard import BlockedAddress, check_host
from chargewire.channels.registry import channel_names, channel_type
from chargewire.clock import utcnow
from chargewire.errors import NotFound, PermissionDenied, ValidationFailed
from chargewire.filters import FilterLimits, compile_filter
from chargewire.ids import has_prefix, new_id
from chargewire.kafka.streams import PayloadCheck
from chargewire.models import ApiToken, KafkaSecrets, Scope, SigningSecret, Subscription, Via
from chargewire.security import new_signing_secret
from chargewire.services.subscription_spec import SubscriptionSpec, parse_subscription
from chargewire.store.subscription_store import SubscriptionStore

logger = logging.getLogger(__name__)

MAX_PER_PAGE = 100
# Every target field a channel may set: a replace clears those of the channel the subscription leaves.
_NO_TARGET: dict[str, Any] = {"callback_url": None, "kafka": None, "target": None}
# Name lookups at subscribe time: a name not resolved by then is accepted (each delivery checks it again). Well
# inside the API's 4.5 s request deadline, which otherwise answers a stalled resolver with 503.
HOST_CHECK_BUDGET_S = 2.0
_ALLOW_NETWORKS_HINT = "The operator can admit chosen networks with CHARGEWIRE_DELIVERY_ALLOW_NETWORKS (CIDRs)."


@dataclass(frozen=True, slots=True)
class Caller:
    """On whose behalf a call runs: one token (which may be admin), or the operator, who sees everything."""

    token_id: str | None
    sees_all: bool

    @classmethod
    def of(cls, token: ApiToken) -> Caller:
        """The caller for an authenticated API token."""
        return cls(token_id=token.id, sees_all=token.is_admin)


OPERATOR = Caller(token_id=None, sees_all=True)


@dataclass(frozen=True, slots=True)
class CreatedSubscription:
    """A new subscription and its signing secret, the one moment that secret is shown."""

    subscription: Subscription
    signing_secret: str


@dataclass(frozen=True, slots=True)
class CursorPage:
    """One page in id order, with opaque cursors to the pages on either side (None at an end)."""

    items: list[Subscription]
    per_page: int
    next_cursor: str | None
    prev_cursor: str | None


@dataclass(frozen=True, slots=True)
class NumberedPage:
    """One page by number, with the total count."""

    items: list[Subscription]
    page: int
    per_page: int
    total: int


class SubscriptionService:
    """The use cases of the subscriptions resource."""

    def __init__(
        self,
        store: SubscriptionStore,
        allow_networks: Sequence[IPv4Network | IPv6Network],
        rotation_overlap_s: float,
        filter_limits: FilterLimits | None = None,
    ) -> None:
        self._store = store
        self._allow_networks = list(allow_networks)
        self._rotation_overlap_s = rotation_overlap_s
        self._filter_limits = filter_limits or FilterLimits()
        self._stream_listeners: list[Callable[[], None]] = []

    def on_streams_changed(self, callback: Callable[[], None]) -> None:
        """Call `callback` after a Kafka subscription is created, replaced or enabled here: its stream may be ready
        (a worker with no Kafka subscription known looks for streams only now and then)."""
        self._stream_listeners.append(callback)

    def _streams_changed(self, subscription: Subscription) -> None:
        if subscription.via is Via.KAFKA:
            for callback in self._stream_listeners:
                callback()

    async def create(self, owner: ApiToken, body: Mapping[str, Any], api_version: int = 2) -> CreatedSubscription:
        """Subscribe on behalf of `owner` (whose token will sign deliveries); returns the new signing secret."""
        if owner.revoked_at is not None:
            raise ValidationFailed({"token_id": [f"Token {owner.id} is revoked."]})
        if not owner.allows(Scope.NOTIFICATIONS_MANAGE):
            lacks = f"Token {owner.id} lacks the {Scope.NOTIFICATIONS_MANAGE} scope that owning a subscription needs."
            raise ValidationFailed({"token_id": [lacks]})
        spec = await self.validate(body)
        now = utcnow()
        subscription = Subscription(
            id=new_id("sub"),
            via=spec.via,
            notifications=spec.notifications,
            token_id=owner.id,
            api_version=api_version,
            created_at=now,
            updated_at=now,
            **spec.target,
        )
        subscription = replace(subscription, **spec.extensions)
        secret = new_signing_secret()
        await self._store.insert_subscription(subscription, spec.secrets, secret)
        logger.info("subscription %s created by token %s (%s)", subscription.id, owner.id, subscription.via)
        self._streams_changed(subscription)
        return CreatedSubscription(subscription, secret)

    async def get(self, caller: Caller, subscription_id: str, via: Via | None = None) -> Subscription:
        """One subscription the caller may see; NotFound, or PermissionDenied when it belongs to another token.

        With `via`, a subscription of another kind counts as missing (the v1.0 API knows only webhooks).
        """
        # An id that is not ours is missing without asking the database (it may hold bytes it cannot compare).
        subscription = (
            await self._store.get_subscription(subscription_id) if has_prefix(subscription_id, "sub") else None
        )
        if subscription is None or (via is not None and subscription.via is not via):
            raise NotFound("No subscription with that id.")
        if not caller.sees_all and subscription.token_id != caller.token_id:
            raise PermissionDenied()
        return subscription

    async def list_page(
        self, caller: Caller, per_page: int = MAX_PER_PAGE, cursor: str | None = None, via: Via | None = None
    ) -> CursorPage:
        """A page of the caller's subscriptions in creation order, from an opaque cursor."""
        after, before = _decode_cursor(cursor)
        token_id = None if caller.sees_all else caller.token_id
        rows = await self._store.list_by_id(limit=per_page + 1, after=after, before=before, token_id=token_id, via=via)
        more = len(rows) > per_page
        if before is not None:
            items = rows[1:] if more else rows
            has_prev, has_next = more, True
        else:
            items = rows[:per_page]
            has_prev, has_next = after is not None, more
        next_cursor = _encode_cursor(items[-1].id, forward=True) if has_next and items else None
        prev_cursor = _encode_cursor(items[0].id, forward=False) if has_prev and items else None
        return CursorPage(items, per_page, next_cursor, prev_cursor)

    async def list_numbered(
        self, caller: Caller, page: int = 1, per_page: int = MAX_PER_PAGE, via: Via | None = None
    ) -> NumberedPage:
        """Page `page` (from 1) of the caller's subscriptions in creation order, with the total count."""
        token_id = None if caller.sees_all else caller.token_id
        items, total = await self._store.list_numbered(
            offset=(page - 1) * per_page, limit=per_page, token_id=token_id, via=via
        )
        return NumberedPage(items, page, per_page, total)

    async def replace(
        self, caller: Caller, subscription_id: str, body: Mapping[str, Any], via: Via | None = None
    ) -> Subscription:
        """Overwrite a subscription with a full body (PUT); optional extensions not sent keep their values."""
        current = await self.get(caller, subscription_id, via)
        # The secret half of its target, which a body sending null secrets keeps (none for a webhook).
        stored = await self._store.target_secrets(subscription_id)
        spec = await self.validate(body, stored)
        updated = replace(
            current,
            via=spec.via,
            notifications=spec.notifications,
            **(_NO_TARGET | dict(spec.target)),
            updated_at=utcnow(),
            **spec.extensions,
        )
        if not await self._store.replace_subscription(updated, spec.secrets, keeps=_payload_check(updated)):
            raise NotFound(f"No subscription {subscription_id}.")
        logger.info("subscription %s replaced", subscription_id)
        self._streams_changed(updated)
        return updated

    async def delete(self, caller: Caller, subscription_id: str, via: Via | None = None) -> None:
        """Unsubscribe: the subscription and its pending deliveries are removed."""
        await self.get(caller, subscription_id, via)
        if not await self._store.delete_subscription(subscription_id):
            raise NotFound(f"No subscription {subscription_id}.")
        logger.info("subscription %s deleted", subscription_id)

    async def set_enabled(self, caller: Caller, subscription_id: str, enabled: bool) -> Subscription:
        """Pause or resume deliveries to a subscription."""
        await self.get(caller, subscription_id)
        await self._store.set_enabled(subscription_id, enabled, utcnow(), None if enabled else "disabled by a user")
        subscription = await self.get(caller, subscription_id)
        if enabled:
            self._streams_changed(subscription)
        return subscription

    async def rotate_secret(self, caller: Caller, subscription_id: str) -> tuple[str, list[SigningSecret]]:
        """Make a new signing secret; the previous one stays valid for the configured overlap.

        Returns the new secret and every secret valid from now on (newest first).
        """
        await self.get(caller, subscription_id)
        secret = new_signing_secret()
        valid = await self._store.rotate_signing_secret(subscription_id, secret, utcnow(), self._rotation_overlap_s)
        if valid is None:
            raise NotFound(f"No subscription {subscription_id}.")
        logger.info("signing secret of subscription %s rotated", subscription_id)
        return secret, valid

    async def signing_secrets(self, subscription_id: str, now: datetime | None = None) -> list[str]:
        """The signing secrets valid now, newest first, to sign a delivery's `webhook-signature`."""
        return [s.secret for s in await self._store.signing_secrets(subscription_id, now or utcnow())]

    async def target_secrets(self, subscription_id: str) -> Any:
        """The secret half of a subscription's target as its channel loads it; None when it has none."""
        return await self._store.target_secrets(subscription_id)

    async def kafka_secrets(self, subscription_id: str) -> KafkaSecrets:
        """The SASL password and client key of a Kafka subscription, for the channel that produces to it."""
        return await self._store.kafka_secrets(subscription_id) or KafkaSecrets()

    async def validate(self, body: Mapping[str, Any], stored: object = None) -> SubscriptionSpec:
        """Parse a v2.0 body and check its targets against the address guard, reporting every error at once."""
        try:
            spec = parse_subscription(body, stored)
            self._filter_limits.check(spec.extensions.get("filter"))
        except ValidationFailed as failure:
            errors = failure.errors
            for where, messages in (await self._blocked_targets(body)).items():
                errors.setdefault(where, messages)
            raise ValidationFailed(errors) from failure
        blocked = await self._blocked_targets(body)
        if blocked:
            raise ValidationFailed(blocked)
        return spec

    async def _blocked_targets(self, body: Mapping[str, Any]) -> dict[str, list[str]]:
        """The webhook URL's or Kafka brokers' errors from the address guard, by field."""
        targets = _target_hosts(body)
        # All at once, each within the budget: one after another, stalled lookups would add up past the deadline.
        found = await asyncio.gather(*(self._host_errors(host) for _, host in targets))
        return {where: errors for (where, _), errors in zip(targets, found, strict=True) if errors}

    async def _host_errors(self, host: str) -> list[str]:
        """What the address guard finds wrong with one host, if anything."""
        try:
            await check_host(host, self._allow_networks, resolve_timeout_s=HOST_CHECK_BUDGET_S)
        except BlockedAddress as blocked:
            return [f"{blocked.message} {_ALLOW_NETWORKS_HINT}"]
        except ValueError:  # a host name IDNA cannot encode (an empty or over-long label)
            return ["The host is not a valid name."]
        return []


def _target_hosts(body: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(field, host) of each target a body names, as far as it can be read; the parser judges the rest."""
    via = body.get("via")
    section = body.get(via) if isinstance(via, str) and via in channel_names() else None
    return channel_type(str(via)).target_hosts(section) if isinstance(section, Mapping) else []


def _payload_check(subscription: Subscription) -> PayloadCheck:
    """Whether a stored payload passes the subscription's filter."""
    wanted = compile_filter(subscription.filter)
    return lambda payload: wanted(orjson.loads(payload))


def _encode_cursor(subscription_id: str, forward: bool) -> str:
    document = json.dumps({"id": subscription_id, "_pointsToNextItems": forward}, separators=(",", ":"))
    return base64.urlsafe_b64encode(document.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str | None) -> tuple[str | None, str | None]:
    """The (after, before) ids a cursor points from; ValidationFailed naming `cursor` when it is not ours."""
    if not cursor:
        return None, None
    try:
        document = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        subscription_id, forward = document["id"], document["_pointsToNextItems"]
    except (ValueError, binascii.Error, KeyError, TypeError) as exc:
        raise ValidationFailed({"cursor": ["The cursor is not valid; follow the links of a previous page."]}) from exc
    if not isinstance(subscription_id, str) or not has_prefix(subscription_id, "sub") or not isinstance(forward, bool):
        raise ValidationFailed({"cursor": ["The cursor is not valid; follow the links of a previous page."]})
    return (subscription_id, None) if forward else (None, subscription_id)
