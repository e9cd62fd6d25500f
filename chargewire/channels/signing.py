"""Signatures and headers for outbound messages: pure functions over the exact payload bytes.

Two schemes ride on every message (see `delivery.md`):

- `X-Signature`: lowercase hex HMAC-SHA256 of the body, keyed with the API token text that created the
  subscription. The original platform's scheme, kept for compatibility; it does not cover a timestamp.
- `webhook-signature`: the Standard Webhooks scheme, `v1,<base64 HMAC-SHA256>` over
  `"{webhook-id}.{webhook-timestamp}.{body}"`, keyed with the base64-decoded part of each `whsec_` secret.
  During a rotation every valid secret signs, and the entries are separated by spaces.

`message_headers` builds the channel-independent set (Kafka reuses it for record headers);
`webhook_headers` adds what only HTTP needs.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime

from chargewire.channels.base import OutboundMessage
from chargewire.security.tokens import SIGNING_SECRET_PREFIX
from chargewire.version import __version__

USER_AGENT = f"chargewire/{__version__}"


def x_signature(body: bytes, token: str) -> str:
    """The `X-Signature` value: lowercase hex HMAC-SHA256 of `body` keyed with the token text."""
    return _token_signer(token).sign(body).hex()


def webhook_signature(msg_id: str, timestamp: int, body: bytes, secrets: Sequence[str]) -> str:
    """The Standard Webhooks `webhook-signature` value: one `v1,<base64>` entry per secret, space-separated."""
    if not secrets:
        raise ValueError("at least one signing secret is needed")
    # The signed content in one buffer: copying ~1 KB costs less than a second `update`.
    signed = b"%s.%d.%s" % (msg_id.encode(), timestamp, body)
    entries = []
    for secret in secrets:
        entries.append("v1," + binascii.b2a_base64(_secret_signer(secret).sign(signed), newline=False).decode())
    return " ".join(entries)


def x_timestamp(dt: datetime) -> str:
    """ISO 8601 in UTC with microseconds and a `Z` suffix, e.g. `2026-11-24T08:56:29.000123Z`."""
    if dt.tzinfo is None:
        raise ValueError("a timezone-aware datetime is needed")
    # isoformat, not strftime: the same text in a third of the time (strftime rewrites its format for `%f` on
    # every call), once per attempt. Naive first, so no offset is written to cut off.
    return dt.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def message_headers(message: OutboundMessage, now: datetime, into: dict[str, str] | None = None) -> dict[str, str]:
    """Identity, timestamps and both signatures of one attempt: the headers every channel carries.

    Added to `into` (after what it holds already) when given, else to a new dict. `webhook-signature` is left
    out only when the subscription has no signing secret at all, which the subscription service never creates;
    `X-Signature` still authenticates such a message.
    """
    iso_time, unix_seconds = _stamps(now)
    headers = {} if into is None else into
    headers["X-Signature"] = x_signature(message.payload, message.token_text)
    headers["X-Timestamp"] = iso_time
    headers["X-Tenant"] = message.tenant
    headers["X-Webhook-Id"] = message.subscription.id
    headers["X-Webhook-Type"] = message.event_name
    headers["webhook-id"] = message.delivery_id
    headers["webhook-timestamp"] = str(unix_seconds)
    if message.signing_secrets:
        headers["webhook-signature"] = webhook_signature(
            message.delivery_id, unix_seconds, message.payload, message.signing_secrets
        )
    return headers


def webhook_headers(message: OutboundMessage, now: datetime, user_agent: str = USER_AGENT) -> dict[str, str]:
    """Every header of a webhook POST (`delivery.md`): content type, user agent, identity, signatures."""
    # Filled in place: merging a second dict into a first cost a dict and a copy of its entries per attempt.
    return message_headers(message, now, {"Content-Type": "application/json", "User-Agent": user_agent})


@functools.lru_cache(maxsize=8)
def _stamps(now: datetime) -> tuple[str, int]:
    """Both forms of an attempt's time; cached because a batch of records shares one."""
    return x_timestamp(now), int(now.timestamp())


_BLOCK_BYTES = 64  # SHA-256's block
_INNER_PAD = bytes(byte ^ 0x36 for byte in range(256))
_OUTER_PAD = bytes(byte ^ 0x5C for byte in range(256))


class _HmacSha256:
    """HMAC-SHA256 (RFC 2104) with its key taken in once: the SHA-256 states after each padded key, copied per
    message. Signing is then six calls into hashlib's C objects and one Python call; a copied `hmac.HMAC` cost
    four to five Python calls per signature, and OpenSSL 3 copies an HMAC context dearer than two digest ones."""

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes) -> None:
        block = (hashlib.sha256(key).digest() if len(key) > _BLOCK_BYTES else key).ljust(_BLOCK_BYTES, b"\0")
        self._inner = hashlib.sha256(block.translate(_INNER_PAD))
        self._outer = hashlib.sha256(block.translate(_OUTER_PAD))

    def sign(self, message: bytes) -> bytes:
        """The 32-byte MAC of `message`."""
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()


# Signers cached by the key's text, made once per key (taking a key in hashes two blocks): a rotated token or
# secret is new text, so it signs at once. Keyed by the encoded bytes instead, each attempt encoded the token and
# hashed the new bytes, and a secret took two lookups.
@functools.lru_cache(maxsize=1024)
def _token_signer(token: str) -> _HmacSha256:
    """The `X-Signature` signer of an API token's text."""
    return _HmacSha256(token.encode())


@functools.lru_cache(maxsize=1024)
def _secret_signer(secret: str) -> _HmacSha256:
    """The `webhook-signature` signer of a `whsec_` secret."""
    return _HmacSha256(_secret_key(secret))


def _secret_key(secret: str) -> bytes:
    """The HMAC key of a `whsec_` secret: the bytes its base64 part encodes (padding optional)."""
    encoded = secret.removeprefix(SIGNING_SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except ValueError as exc:
        raise ValueError("a signing secret must be `whsec_` followed by base64") from exc
    if not key:
        raise ValueError("a signing secret may not be empty")
    return key
