"""Cross-site request forgery defence: a per-session token in every form, and same-origin POSTs only.

The token is random, kept in the signed session cookie and written into each form; a POST whose form field
does not match the session's token is refused. Browsers also send `Origin` with a POST: when present, it
must name this host, which stops a forged request even before the token is looked at.
"""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import urlsplit

FIELD_NAME = "csrf_token"
_TOKEN_BYTES = 32


def new_csrf_token() -> str:
    """A fresh token for a session."""
    return secrets.token_urlsafe(_TOKEN_BYTES)


def csrf_matches(expected: str, submitted: object) -> bool:
    """True when the submitted form value is the session's token (compared in constant time)."""
    if not isinstance(submitted, str) or not submitted or not expected:
        return False
    return hmac.compare_digest(expected.encode(), submitted.encode())


def same_origin(origin: str | None, host: str | None) -> bool:
    """True when a request's `Origin` header is absent or names the host it was sent to."""
    if origin is None:
        return True
    if origin == "null" or not host:
        return False
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and parts.netloc.lower() == host.lower()
