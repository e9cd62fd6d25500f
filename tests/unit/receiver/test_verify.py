"""Subscribers can verify chargewire's signatures, and tampering or replays are caught."""

from __future__ import annotations

import hashlib
import hmac
import time
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook

from chargewire.receiver import InvalidSignature, verify_notification
from chargewire.security import new_signing_secret

BODY = b'{"notification":"BootNotification","chargePointId":1042}'
TOKEN = "cw_example-token"


def _signed_headers(secret: str, timestamp: datetime | None = None) -> dict[str, str]:
    moment = timestamp or datetime.now(UTC)
    signature = Webhook(secret).sign("dlv_01", moment, BODY.decode())
    return {
        "webhook-id": "dlv_01",
        "webhook-timestamp": str(int(moment.timestamp())),
        "webhook-signature": signature,
        "X-Signature": hmac.new(TOKEN.encode(), BODY, hashlib.sha256).hexdigest(),
    }


def test_signatures_made_by_an_independent_library_verify() -> None:
    secret = new_signing_secret()
    verify_notification(BODY, _signed_headers(secret), signing_secret=secret, api_token=TOKEN)


def test_a_changed_body_is_refused() -> None:
    secret = new_signing_secret()
    with pytest.raises(InvalidSignature):
        verify_notification(BODY + b" ", _signed_headers(secret), signing_secret=secret)


def test_a_wrong_token_is_refused() -> None:
    secret = new_signing_secret()
    with pytest.raises(InvalidSignature, match="X-Signature"):
        verify_notification(BODY, _signed_headers(secret), api_token="cw_other")


def test_an_old_timestamp_is_refused_as_a_possible_replay() -> None:
    secret = new_signing_secret()
    old = datetime.fromtimestamp(time.time() - 3600, UTC)
    with pytest.raises(InvalidSignature, match="replay"):
        verify_notification(BODY, _signed_headers(secret, old), signing_secret=secret)


def test_any_of_several_signatures_during_a_rotation_verifies() -> None:
    old_secret, new_secret = new_signing_secret(), new_signing_secret()
    headers = _signed_headers(old_secret)
    headers["webhook-signature"] = _signed_headers(new_secret)["webhook-signature"] + " " + headers["webhook-signature"]
    verify_notification(BODY, headers, signing_secret=old_secret)
    verify_notification(BODY, headers, signing_secret=new_secret)


def test_a_key_is_required() -> None:
    with pytest.raises(ValueError, match="signing secret"):
        verify_notification(BODY, {})
