"""Back-office sessions in a signed cookie: who is signed in, the CSRF token, and one-shot messages.

A signed-in cookie also names a server-side session (`services.backoffice_sessions`), which signing out
deletes: the signature proves the cookie is ours, the session row that it has not been ended since.

The cookie is `base64url(JSON) "." base64url(HMAC-SHA256)` under a key derived with HKDF from the service's
secret key, so it can be read by the browser's owner but not changed; nothing secret is put in it. A session
lasts `max_age_s` from sign-in. The cookie is HttpOnly, SameSite=Lax, limited to the back office's path, and
Secure when the request came over HTTPS.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from hashlib import sha256
from http.cookies import CookieError, SimpleCookie
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chargewire.backoffice.csrf import new_csrf_token

COOKIE_NAME = "chargewire_backoffice"
SCOPE_KEY = "chargewire.session"
DEFAULT_MAX_AGE_S = 12 * 3600
_KEY_CONTEXT = b"chargewire back office session v1"
# A clock a little ahead elsewhere should not void a session; one far ahead is a forgery.
_CLOCK_SKEW_S = 60


@dataclass
class Session:
    """One browser's session; `modified` tells the middleware to send the cookie again."""

    user_id: str | None = None
    session_id: str | None = None
    csrf: str = ""
    issued_at: float = field(default_factory=time.time)
    flashes: list[tuple[str, str]] = field(default_factory=list)
    modified: bool = False

    @property
    def csrf_token(self) -> str:
        """The token forms must send back; made (and the cookie sent) the first time a form needs it."""
        if not self.csrf:
            self.csrf = new_csrf_token()
            self.modified = True
        return self.csrf

    def sign_in(self, user_id: str, session_id: str) -> None:
        """Start a signed-in session; the CSRF token changes so one planted before sign-in is useless."""
        self.user_id = user_id
        self.session_id = session_id
        self.csrf = new_csrf_token()
        self.issued_at = time.time()
        self.modified = True

    def sign_out(self) -> None:
        """Forget the user and the token."""
        self.user_id = None
        self.session_id = None
        self.csrf = new_csrf_token()
        self.flashes = []
        self.modified = True

    def flash(self, kind: str, text: str) -> None:
        """Keep a message ("ok" or "error") for the next page shown."""
        self.flashes.append((kind, text))
        self.modified = True

    def pop_flashes(self) -> list[tuple[str, str]]:
        """The waiting messages, removed from the session."""
        shown, self.flashes = self.flashes, []
        if shown:
            self.modified = True
        return shown

    def to_data(self) -> dict[str, Any]:
        """The cookie's content."""
        return {"u": self.user_id, "s": self.session_id, "c": self.csrf, "t": self.issued_at, "f": self.flashes}

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> Session | None:
        """A session from a cookie's content, or None when it is not in the expected shape."""
        user_id, csrf, issued_at, flashes = data.get("u"), data.get("c"), data.get("t"), data.get("f")
        session_id = data.get("s")
        if not (user_id is None or isinstance(user_id, str)) or not isinstance(csrf, str):
            return None
        if not (session_id is None or isinstance(session_id, str)):
            return None
        if not isinstance(issued_at, int | float) or not isinstance(flashes, list):
            return None
        pairs = [(str(item[0]), str(item[1])) for item in flashes if isinstance(item, list) and len(item) == 2]
        return cls(user_id=user_id, session_id=session_id, csrf=csrf, issued_at=float(issued_at), flashes=pairs)


class SessionSigner:
    """Signs session data into a cookie value and checks it back, refusing tampered or expired ones."""

    def __init__(
        self, secret_key: str, max_age_s: float = DEFAULT_MAX_AGE_S, clock: Callable[[], float] = time.time
    ) -> None:
        self._key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_KEY_CONTEXT).derive(secret_key.encode())
        self.max_age_s = max_age_s
        self._clock = clock

    def dumps(self, session: Session) -> str:
        """The cookie value for a session."""
        payload = _b64encode(json.dumps(session.to_data(), separators=(",", ":")).encode())
        return f"{payload}.{self._sign(payload)}"

    def loads(self, value: str) -> Session | None:
        """The session in a cookie value, or None when the signature is wrong, the shape odd, or it expired."""
        payload, _, signature = value.partition(".")
        if not payload or not hmac.compare_digest(signature.encode(), self._sign(payload).encode()):
            return None
        try:
            data = json.loads(_b64decode(payload))
        except (ValueError, binascii.Error):
            return None
        session = Session.from_data(data) if isinstance(data, dict) else None
        if session is None:
            return None
        age = self._clock() - session.issued_at
        if age > self.max_age_s or age < -_CLOCK_SKEW_S:
            return None
        return session

    def known_client_mark(self, account: str) -> str:
        """The cookie value a browser keeps once it signed in to `account` (sign-in throttling trusts it more)."""
        return self._sign(f"known client:{account}")

    def is_known_client(self, mark: str | None, account: str) -> bool:
        """True when `mark` is this account's known-client cookie value."""
        return mark is not None and hmac.compare_digest(mark.encode(), self.known_client_mark(account).encode())

    def _sign(self, payload: str) -> str:
        return _b64encode(hmac.new(self._key, payload.encode(), sha256).digest())


class SessionMiddleware:
    """Loads the session from its cookie into the request scope, and sends the cookie again when it changed."""

    def __init__(self, app: ASGIApp, signer: SessionSigner, path: str) -> None:
        self.app = app
        self.signer = signer
        self.path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        session = self._load(scope)
        scope[SCOPE_KEY] = session

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start" and session.modified:
                MutableHeaders(scope=message).append("set-cookie", self._cookie(session, scope))
            await send(message)

        await self.app(scope, receive, send_with_cookie)

    def _load(self, scope: Scope) -> Session:
        for name, value in scope.get("headers", ()):
            if name != b"cookie":
                continue
            cookie: SimpleCookie = SimpleCookie()
            try:
                cookie.load(value.decode("latin-1"))
            except CookieError:  # a malformed header, perhaps from another site's cookie on this host
                continue
            if COOKIE_NAME in cookie:
                loaded = self.signer.loads(cookie[COOKIE_NAME].value)
                if loaded is not None:
                    return loaded
        return Session()

    def _cookie(self, session: Session, scope: Scope) -> str:
        secure = "; Secure" if scope.get("scheme") == "https" else ""
        max_age = int(self.signer.max_age_s)
        value = self.signer.dumps(session)
        return f"{COOKIE_NAME}={value}; Path={self.path}; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}"


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
