"""API token text: how tokens and signing secrets are made, and how a token is found by its hash."""

from __future__ import annotations

import base64
import hashlib
import secrets

TOKEN_PREFIX = "cw_"  # noqa: S105 (a prefix, not a secret)
SIGNING_SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)


def new_api_token() -> str:
    """A new bearer token: `cw_` and 43 URL-safe characters (256 random bits)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """The lookup key for a token: its SHA-256 in hex. Tokens are random, so no salt or slow hash is needed."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_signing_secret() -> str:
    """A Standard Webhooks secret: `whsec_` and the base64 of 32 random bytes."""
    return SIGNING_SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()
