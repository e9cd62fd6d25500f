"""Factories for the domain records tests build by hand: every field has a sensible default."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from chargewire.channels.base import OutboundMessage
from chargewire.clock import utcnow
from chargewire.ids import new_id
from chargewire.models import Attempt, DeliveryStatus, Subscription, Via
from chargewire.security import new_signing_secret
from chargewire.store.delivery_records import AttemptRecord, ClaimedDelivery

DEFAULT_BODY = b'{"notification":"session.started","session":{"id":"s-1"}}'


def subscription_factory(**overrides: Any) -> Subscription:
    """A webhook subscription; any field can be overridden."""
    now = utcnow()
    subscription = Subscription(
        id="sub_01",
        via=Via.WEBHOOK,
        notifications=("session.started",),
        token_id="tok_01",
        api_version=2,
        created_at=now,
        updated_at=now,
        callback_url="https://receiver.example/hook",
    )
    return replace(subscription, **overrides)


def outbound_message_factory(subscription: Subscription | None = None, **overrides: Any) -> OutboundMessage:
    """One attempt's message, as the dispatcher builds it; any field can be overridden."""
    message = OutboundMessage(
        delivery_id="dlv_01",
        event_id="evt_01",
        event_name="session.started",
        payload=DEFAULT_BODY,
        entity_id="s-1",
        subscription=subscription or subscription_factory(),
        attempt_number=1,
        tenant="tenant-a",
        token_text="cw_live_token-text",
        signing_secrets=(new_signing_secret(),),
    )
    return replace(message, **overrides)


def delivered_record_factory(
    delivery: ClaimedDelivery, worker_id: str, request_headers: dict[str, str] | None = None
) -> AttemptRecord:
    """The record of a first attempt of `delivery` by `worker_id` that a webhook receiver answered 200."""
    attempt = Attempt(
        id=new_id("att"),
        delivery_id=delivery.id,
        number=1,
        started_at=utcnow(),
        duration_ms=1.0,
        outcome="delivered",
        status_code=200,
        request_headers=request_headers or {"X-Fine": "yes"},
        response_headers={"Content-Type": "text/plain"},
        response_body="ok",
    )
    return AttemptRecord(attempt, delivery.subscription_id, worker_id, DeliveryStatus.DELIVERED, None, None)
