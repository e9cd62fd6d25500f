"""What a subscriber uses to check that a notification came from chargewire, unchanged and recent.

    from chargewire.receiver import verify_notification
    verify_notification(body, headers, signing_secret="whsec_...", api_token="cw_...")

`webhook-signature` (Standard Webhooks) covers the message id and timestamp too, so a captured request
cannot be replayed later; `X-Signature` (the original platform's scheme) covers the body only.

Standard library only, so that subscribers need nothing of the service. The rules below are the ones every
client of the receiver kit follows (`clients/test-vectors.json` pins them):

| reason                 | when                                                                          |
|------------------------|-------------------------------------------------------------------------------|
| `missing_header`       | a header the scheme needs is absent                                           |
| `malformed_timestamp`  | `webhook-timestamp` is not 1 to 15 decimal digits                             |
| `timestamp_too_old`    | it lies more than the tolerance before now (a replay?)                        |
| `timestamp_too_new`    | it lies more than the tolerance after now                                     |
| `malformed_signature`  | `X-Signature` is not 64 lowercase hex digits; `webhook-signature` has no      |
|                        | `v1,` entry of 44 base64 characters (entries of other versions are ignored)   |
| `signature_mismatch`   | well formed, but no signature matches any of the keys                         |
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import time
from collections.abc import Mapping, Sequence
from enum import StrEnum

DEFAULT_TOLERANCE_S = 300
SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)

_X_SIGNATURE = re.compile(r"[0-9a-f]{64}")
_V1_SIGNATURE = re.compile(r"v1,([A-Za-z0-9+/]{43}=)")
_TIMESTAMP = re.compile(r"[0-9]{1,15}")


class Reason(StrEnum):
    """Why a notification was refused; the same words in every client of the receiver kit."""

    MISSING_HEADER = "missing_header"
    MALFORMED_TIMESTAMP = "malformed_timestamp"
    TIMESTAMP_TOO_OLD = "timestamp_too_old"
    TIMESTAMP_TOO_NEW = "timestamp_too_new"
    MALFORMED_SIGNATURE = "malformed_signature"
    SIGNATURE_MISMATCH = "signature_mismatch"


class InvalidSignature(ValueError):
    """The notification's signature or timestamp does not check out; `reason` says which rule failed."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def header(headers: Mapping[str, str], name: str) -> str:
    """The value of header `name`, whatever the case of its key; `InvalidSignature` when absent."""
    value = headers.get(name)
    if value is None:
        wanted = name.lower()
        value = next((v for key, v in headers.items() if key.lower() == wanted), None)
    if value is None:
        raise InvalidSignature(Reason.MISSING_HEADER, f"missing header {name}")
    return value


def secret_key(secret: str) -> bytes:
    """The HMAC key of a `whsec_` secret: the bytes its base64 part encodes (prefix and padding optional)."""
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except binascii.Error as exc:
        raise ValueError("a signing secret must be `whsec_` followed by base64") from exc
    if not key:
        raise ValueError("a signing secret may not be empty")
    return key


def verify_x_signature(body: bytes, headers: Mapping[str, str], api_token: str) -> None:
    """Check `X-Signature` (hex HMAC-SHA256 of the body) against the API token that created the subscription."""
    offered = header(headers, "X-Signature")
    if not _X_SIGNATURE.fullmatch(offered):
        raise InvalidSignature(Reason.MALFORMED_SIGNATURE, "X-Signature is not 64 lowercase hex digits")
    expected = hmac.new(api_token.encode(), body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(offered, expected):
        raise InvalidSignature(Reason.SIGNATURE_MISMATCH, "X-Signature does not match the body")


def verify_webhook_signature(
    body: bytes,
    headers: Mapping[str, str],
    signing_secret: str | Sequence[str],
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> None:
    """Check the Standard Webhooks trio with one `whsec_` secret or several (during a rotation).

    Any `v1,` entry of `webhook-signature` made with any of the secrets is enough; the timestamp must lie
    within `tolerance_s` of `now` (the clock when None).
    """
    secrets = [signing_secret] if isinstance(signing_secret, str) else list(signing_secret)
    if not secrets:
        raise ValueError("give at least one signing secret")
    message_id = header(headers, "webhook-id")
    timestamp = _checked_timestamp(header(headers, "webhook-timestamp"), tolerance_s, now)
    offered = _v1_signatures(header(headers, "webhook-signature"))
    signed = f"{message_id}.{timestamp}.".encode() + body
    expected = [base64.b64encode(hmac.new(secret_key(s), signed, hashlib.sha256).digest()) for s in secrets]
    # Every pair is compared, so the time taken does not tell which entry came close.
    matches = [hmac.compare_digest(e, o) for e in expected for o in offered]
    if not any(matches):
        raise InvalidSignature(Reason.SIGNATURE_MISMATCH, "webhook-signature does not match")


def verify_notification(
    body: bytes,
    headers: Mapping[str, str],
    *,
    signing_secret: str | Sequence[str] | None = None,
    api_token: str | None = None,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> None:
    """Check every signature for which a key is given; at least one key is needed."""
    if signing_secret is None and api_token is None:
        raise ValueError("give the subscription's signing secret, its API token, or both")
    if signing_secret is not None:
        verify_webhook_signature(body, headers, signing_secret, tolerance_s, now)
    if api_token is not None:
        verify_x_signature(body, headers, api_token)


def _checked_timestamp(text: str, tolerance_s: float, now: float | None) -> int:
    if not _TIMESTAMP.fullmatch(text):
        raise InvalidSignature(Reason.MALFORMED_TIMESTAMP, "webhook-timestamp is not a number of seconds")
    timestamp = int(text)
    clock = time.time() if now is None else now
    if timestamp < clock - tolerance_s:
        raise InvalidSignature(Reason.TIMESTAMP_TOO_OLD, "webhook-timestamp is too far in the past (a replay?)")
    if timestamp > clock + tolerance_s:
        raise InvalidSignature(Reason.TIMESTAMP_TOO_NEW, "webhook-timestamp is too far in the future")
    return timestamp


def _v1_signatures(value: str) -> list[bytes]:
    found = [m.group(1).encode() for m in map(_V1_SIGNATURE.fullmatch, value.split()) if m]
    if not found:
        raise InvalidSignature(Reason.MALFORMED_SIGNATURE, "webhook-signature has no well-formed v1 entry")
    return found
