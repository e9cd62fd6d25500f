"""Signatures and headers, checked with independent code: the `hmac` module and the `standardwebhooks` package."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from chargewire.channels.base import OutboundMessage
from chargewire.channels.signing import (
    message_headers,
    webhook_headers,
    webhook_signature,
    x_signature,
    x_timestamp,
)
from chargewire.clock import utcnow
from chargewire.security import new_signing_secret
from chargewire.version import __version__
from tests.support.factories import outbound_message_factory

BODY = '{"notification":"session.started","session":{"id":"s-1","note":"Ünïcødé ⚡"}}'.encode()


def outbound_message(**overrides: Any) -> OutboundMessage:
    """A message with this module's body; any field can be overridden."""
    return outbound_message_factory(**{"payload": BODY, **overrides})


def test_x_signature_is_hex_hmac_sha256_of_the_exact_body_keyed_with_the_token() -> None:
    expected = hmac.new(b"cw_live_token-text", BODY, hashlib.sha256).hexdigest()

    assert x_signature(BODY, "cw_live_token-text") == expected
    assert expected == expected.lower()


@pytest.mark.parametrize("key_bytes", [1, 63, 64, 65, 200])
@pytest.mark.parametrize("body", [b"", BODY, BODY * 40])
def test_signatures_equal_the_hmac_modules_for_keys_shorter_equal_and_longer_than_a_block(
    key_bytes: int, body: bytes
) -> None:
    token = "t" * key_bytes
    secret_key = bytes(range(256))[:key_bytes]
    secret = "whsec_" + base64.b64encode(secret_key).decode()

    assert x_signature(body, token) == hmac.new(token.encode(), body, hashlib.sha256).hexdigest()
    signed = hmac.new(secret_key, b"msg_1.1700000000." + body, hashlib.sha256).digest()
    assert webhook_signature("msg_1", 1700000000, body, [secret]) == "v1," + base64.b64encode(signed).decode()


def test_x_signature_changes_when_one_body_byte_changes() -> None:
    assert x_signature(BODY, "token") != x_signature(BODY.replace(b"s-1", b"s-2"), "token")


def test_webhook_signature_verifies_with_the_standard_webhooks_library() -> None:
    secret = new_signing_secret()
    timestamp = int(utcnow().timestamp())
    headers = {
        "webhook-id": "dlv_01",
        "webhook-timestamp": str(timestamp),
        "webhook-signature": webhook_signature("dlv_01", timestamp, BODY, [secret]),
    }

    assert Webhook(secret).verify(BODY, headers)["session"]["id"] == "s-1"


def test_webhook_signature_with_two_secrets_verifies_with_either_during_rotation() -> None:
    new, old = new_signing_secret(), new_signing_secret()
    timestamp = int(utcnow().timestamp())
    signature = webhook_signature("dlv_01", timestamp, BODY, [new, old])
    headers = {"webhook-id": "dlv_01", "webhook-timestamp": str(timestamp), "webhook-signature": signature}

    assert len(signature.split(" ")) == 2
    Webhook(new).verify(BODY, headers)
    Webhook(old).verify(BODY, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_signing_secret()).verify(BODY, headers)


def test_webhook_signature_covers_id_and_timestamp() -> None:
    secret = new_signing_secret()
    timestamp = int(utcnow().timestamp())
    signature = webhook_signature("dlv_01", timestamp, BODY, [secret])

    replayed = {"webhook-id": "dlv_02", "webhook-timestamp": str(timestamp), "webhook-signature": signature}
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY, replayed)


def test_webhook_signature_accepts_unpadded_base64_secrets_like_the_library() -> None:
    raw = bytes(range(24, 48))
    unpadded = "whsec_" + base64.b64encode(raw).decode().rstrip("=")
    timestamp = int(utcnow().timestamp())
    headers = {
        "webhook-id": "dlv_01",
        "webhook-timestamp": str(timestamp),
        "webhook-signature": webhook_signature("dlv_01", timestamp, BODY, [unpadded]),
    }

    Webhook(unpadded).verify(BODY, headers)


@pytest.mark.parametrize("secret", ["whsec_not base64!", "whsec_"])
def test_webhook_signature_rejects_malformed_secrets(secret: str) -> None:
    with pytest.raises(ValueError, match="signing secret"):
        webhook_signature("dlv_01", 0, BODY, [secret])


def test_webhook_signature_needs_a_secret() -> None:
    with pytest.raises(ValueError, match="at least one"):
        webhook_signature("dlv_01", 0, BODY, [])


def test_x_timestamp_is_utc_with_microseconds_and_z() -> None:
    plus_two = timezone(timedelta(hours=2))

    assert x_timestamp(datetime(2026, 3, 1, 10, 0, 0, 5, tzinfo=plus_two)) == "2026-03-01T08:00:00.000005Z"
    assert x_timestamp(datetime(2026, 3, 1, 8, 0, tzinfo=UTC)) == "2026-03-01T08:00:00.000000Z"


def test_x_timestamp_refuses_naive_datetimes() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        x_timestamp(datetime(2026, 3, 1, 8, 0))


def test_webhook_headers_carry_every_header_of_the_delivery_contract() -> None:
    message = outbound_message()
    now = datetime(2026, 3, 1, 8, 0, 0, 123456, tzinfo=UTC)

    headers = webhook_headers(message, now)

    assert headers == {
        "Content-Type": "application/json",
        "User-Agent": f"chargewire/{__version__}",
        "X-Signature": x_signature(BODY, "cw_live_token-text"),
        "X-Timestamp": "2026-03-01T08:00:00.123456Z",
        "X-Tenant": "tenant-a",
        "X-Webhook-Id": "sub_01",
        "X-Webhook-Type": "session.started",
        "webhook-id": "dlv_01",
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": webhook_signature("dlv_01", int(now.timestamp()), BODY, message.signing_secrets),
    }


def test_webhook_headers_verify_end_to_end_with_the_standard_webhooks_library() -> None:
    message = outbound_message()

    headers = webhook_headers(message, utcnow())

    Webhook(message.signing_secrets[0]).verify(message.payload, headers)


def test_webhook_headers_sign_with_each_messages_own_keys_after_a_rotation() -> None:
    old, new = new_signing_secret(), new_signing_secret()
    before = outbound_message(signing_secrets=(old,))
    rotated = outbound_message(signing_secrets=(new,), token_text="cw_live_other-token")
    now = utcnow()

    webhook_headers(before, now)  # the signers of the old keys are cached now
    headers = webhook_headers(rotated, now)

    Webhook(new).verify(BODY, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(BODY, headers)
    assert headers["X-Signature"] == hmac.new(b"cw_live_other-token", BODY, hashlib.sha256).hexdigest()


def test_message_headers_are_the_channel_independent_part_of_webhook_headers() -> None:
    message = outbound_message()
    now = utcnow()

    shared = message_headers(message, now)

    assert "Content-Type" not in shared
    assert "User-Agent" not in shared
    assert webhook_headers(message, now, user_agent="probe/1") == {
        "Content-Type": "application/json",
        "User-Agent": "probe/1",
        **shared,
    }


def test_message_headers_never_contain_the_token() -> None:
    message = outbound_message()

    headers = message_headers(message, utcnow())

    assert all(message.token_text not in value for value in headers.values())
