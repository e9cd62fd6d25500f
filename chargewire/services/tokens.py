"""API tokens: create (the text is shown once), authenticate a bearer token, list, revoke."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from chargewire.clock import utcnow
from chargewire.errors import NotFound, Unauthenticated, ValidationFailed
from chargewire.ids import new_id
from chargewire.models import ApiToken, Scope
from chargewire.security import SecretBox, new_api_token, token_hash
from chargewire.storable import storable
from chargewire.store.outage import is_unavailable
from chargewire.store.token_store import TOKEN_NAME_MAX_CHARS, TokenStore

logger = logging.getLogger(__name__)

_CACHE_TTL_S = 5.0
_TOUCH_INTERVAL_S = 60.0
_STALE_ON_OUTAGE_S = 300.0
_TOUCH_FLUSH_TIMEOUT_S = 3.0


@dataclass(frozen=True, slots=True)
class CreatedToken:
    """A token just made: the only moment its text is known outside the encrypted store."""

    token: ApiToken
    text: str


class TokenService:
    """Issues and checks API tokens."""

    def __init__(self, store: TokenStore, box: SecretBox) -> None:
        self._store = store
        self._box = box
        # Authentication runs on every request; a short cache keeps it off the database.
        self._cache: dict[str, tuple[float, ApiToken]] = {}
        self._touching: dict[str, asyncio.Task[None]] = {}  # last-used writes under way, by token id
        self._looking: dict[str, asyncio.Future[ApiToken | None]] = {}  # reads under way, by token hash

    async def create(self, name: str, scopes: Iterable[str]) -> CreatedToken:
        """Make a token with these scopes; its text is in the result and nowhere else in plain form."""
        parsed = _parse_scopes(scopes)
        if not name.strip():
            raise ValidationFailed({"name": ["The name field is required."]})
        if len(name.strip()) > TOKEN_NAME_MAX_CHARS or not storable(name):
            message = f"The name must be text of at most {TOKEN_NAME_MAX_CHARS} characters, without NUL characters."
            raise ValidationFailed({"name": [message]})
        token = ApiToken(id=new_id("tok"), name=name.strip(), scopes=parsed, created_at=utcnow())
        text = new_api_token()
        await self._store.insert_token(token, token_hash(text), self._box.encrypt(text))
        return CreatedToken(token=token, text=text)

    async def authenticate(self, text: str | None) -> ApiToken:
        """The active token for a bearer value, or Unauthenticated."""
        return await self.authenticate_hash(token_hash(text) if text else None)

    async def authenticate_hash(self, key: str | None) -> ApiToken:
        """The active token whose text hashes to `key` (`security.token_hash`), or Unauthenticated."""
        if not key:
            raise Unauthenticated()
        now = time.monotonic()
        cached = self._cache.get(key)
        if cached and now - cached[0] < _CACHE_TTL_S:
            return cached[1]
        try:
            token = await self._find_active(key)
        except Exception as error:
            # During an outage a token seen in the last minutes still opens what needs no database (/metrics):
            # revoking needs the database too, so only a revocation from just before the outage can be missed.
            if cached and now - cached[0] < _STALE_ON_OUTAGE_S and is_unavailable(error):
                return cached[1]
            raise
        if token is None:
            self._cache.pop(key, None)
            raise Unauthenticated()
        if token.last_used_at is None or (utcnow() - token.last_used_at).total_seconds() > _TOUCH_INTERVAL_S:
            at = utcnow()
            self._touch_later(token.id, at)
            token = replace(token, last_used_at=at)
        self._cache[key] = (now, token)
        return token

    async def _find_active(self, key: str) -> ApiToken | None:
        """The store's active token for `key`, one read shared by every request that missed the cache meanwhile:
        at 2,000 requests/s a server running behind had hundreds in flight when the entry ran out, each with a
        read of its own (a pooled connection, two trips to SQLite's thread), 4 % of its event loop's samples."""
        lookup = self._looking.get(key)
        if lookup is None:
            # A task of its own: a request that gives up (a client disconnecting) does not cancel the others' read.
            lookup = asyncio.ensure_future(self._store.find_active_by_hash(key))
            self._looking[key] = lookup
            lookup.add_done_callback(lambda done: self._looked(key, done))
        return await asyncio.shield(lookup)

    def _looked(self, key: str, lookup: asyncio.Future[ApiToken | None]) -> None:
        self._looking.pop(key, None)
        if not lookup.cancelled():
            # Marked as seen: the requests still waiting get its error through their shield; if all gave up, none would.
            lookup.exception()

    def _touch_later(self, token_id: str, at: datetime) -> None:
        """Record the token's use off the request's path: a read must not wait for, or fail with, this write."""
        if token_id in self._touching:
            return
        task = asyncio.get_running_loop().create_task(self._touch(token_id, at))
        self._touching[token_id] = task
        task.add_done_callback(lambda _task: self._touching.pop(token_id, None))

    async def _touch(self, token_id: str, at: datetime) -> None:
        try:
            await self._store.touch_token(token_id, at)
        except Exception as error:
            # Best effort: last_used_at is a hint for operators, written again at the next use.
            logger.warning("could not record when token %s was last used: %s", token_id, error)

    async def flush_touches(self) -> None:
        """Wait for the last-used writes under way (at shutdown, and for tests), a few seconds at most."""
        if self._touching:
            await asyncio.wait(list(self._touching.values()), timeout=_TOUCH_FLUSH_TIMEOUT_S)

    async def list(self, include_revoked: bool = False) -> Sequence[ApiToken]:
        """Every token (not their text)."""
        return await self._store.list_tokens(include_revoked)

    async def get(self, token_id: str) -> ApiToken:
        """One token's record."""
        token = await self._store.get_token(token_id)
        if token is None:
            raise NotFound(f"No token {token_id}.")
        return token

    async def revoke(self, token_id: str) -> None:
        """Revoke a token; requests with it fail from now on."""
        if not await self._store.revoke_token(token_id, utcnow()):
            raise NotFound(f"No active token {token_id}.")
        self._cache.clear()

    async def decrypts_stored_tokens(self) -> bool:
        """True when the key decrypts the newest stored token (or none is stored yet)."""
        ciphertext = await self._store.newest_encrypted_token()
        return ciphertext is None or self._box.can_decrypt(ciphertext)

    async def reveal(self, token_id: str) -> str:
        """The text of a token, decrypted to key `X-Signature`; never shown to a user."""
        ciphertext = await self._store.encrypted_token(token_id)
        if ciphertext is None:
            raise NotFound(f"No token {token_id}.")
        return self._box.decrypt(ciphertext)


def _parse_scopes(scopes: Iterable[str]) -> tuple[Scope, ...]:
    values = list(dict.fromkeys(scopes))
    if not values:
        raise ValidationFailed({"scopes": ["At least one scope is required."]})
    known = {scope.value for scope in Scope}
    unknown = [value for value in values if value not in known]
    if unknown:
        raise ValidationFailed(
            {"scopes": [f"Unknown scope {value!r}; known: {', '.join(sorted(known))}." for value in unknown]}
        )
    return tuple(Scope(value) for value in values)
