"""What a subscriber uses to check that a notification came from chargewire, unchanged and recent.

    from chargewire.receiver import verify_notification
    verify_notification(body, headers, signing_secret="whsec_...", api_token="cw_...")

`webhook-signature` (Standard Webhooks) covers the message id and timestamp too, so a captured request
cannot be replayed later; `X-Signature` (the original platform's scheme) covers the body only.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Mapping

from chargewire.channels.signing import webhook_signature, x_signature

DEFAULT_TOLERANCE_S = 300


class InvalidSignature(Exception):
    """The notification's signature or timestamp does not check out."""


def _header(headers: Mapping[str, str], name: str) -> str:
    for key, value in headers.items():
        if key.lower() == name.lower():
            return value
    raise InvalidSignature(f"missing header {name}")


def verify_x_signature(body: bytes, headers: Mapping[str, str], api_token: str) -> None:
    """Check `X-Signature` against the API token that created the subscription."""
    if not hmac.compare_digest(_header(headers, "X-Signature"), x_signature(body, api_token)):
        raise InvalidSignature("X-Signature does not match the body")


def verify_webhook_signature(
    body: bytes,
    headers: Mapping[str, str],
    signing_secret: str,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> None:
    """Check `webhook-signature` with a `whsec_` secret, refusing timestamps more than `tolerance_s` away."""
    message_id = _header(headers, "webhook-id")
    try:
        timestamp = int(_header(headers, "webhook-timestamp"))
    except ValueError as exc:
        raise InvalidSignature("webhook-timestamp is not a number") from exc
    if abs((time.time() if now is None else now) - timestamp) > tolerance_s:
        raise InvalidSignature("webhook-timestamp is too far from now (a replay?)")
    expected = webhook_signature(message_id, timestamp, body, [signing_secret]).split(",", 1)[1]
    offered = [entry.split(",", 1)[1] for entry in _header(headers, "webhook-signature").split() if "," in entry]
    if not any(hmac.compare_digest(expected, candidate) for candidate in offered):
        raise InvalidSignature("webhook-signature does not match")


def verify_notification(
    body: bytes,
    headers: Mapping[str, str],
    *,
    signing_secret: str | None = None,
    api_token: str | None = None,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
) -> None:
    """Check every signature for which a key is given; at least one key is needed."""
    if signing_secret is None and api_token is None:
        raise ValueError("give the subscription's signing secret, its API token, or both")
    if signing_secret is not None:
        verify_webhook_signature(body, headers, signing_secret, tolerance_s)
    if api_token is not None:
        verify_x_signature(body, headers, api_token)
