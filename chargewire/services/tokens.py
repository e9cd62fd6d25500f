"""API tokens: create (the text is shown once), authenticate a bearer token, list, revoke."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from chargewire.clock import utcnow
from chargewire.errors import NotFound, Unauthenticated, ValidationFailed
from chargewire.ids import new_id
from chargewire.models import ApiToken, Scope
from chargewire.security import SecretBox, new_api_token, token_hash
from chargewire.store.token_store import TokenStore

_CACHE_TTL_S = 5.0
# The width of `api_tokens.name`: PostgreSQL refuses longer text, so it is refused here first, by name.
MAX_NAME_LENGTH = 200
_TOUCH_INTERVAL_S = 60.0


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

    async def create(self, name: str, scopes: Iterable[str]) -> CreatedToken:
        """Make a token with these scopes; its text is in the result and nowhere else in plain form."""
        parsed = _parse_scopes(scopes)
        if not name.strip():
            raise ValidationFailed({"name": ["The name field is required."]})
        if len(name.strip()) > MAX_NAME_LENGTH:
            raise ValidationFailed({"name": [f"The name may have at most {MAX_NAME_LENGTH} characters."]})
        token = ApiToken(id=new_id("tok"), name=name.strip(), scopes=parsed, created_at=utcnow())
        text = new_api_token()
        await self._store.insert_token(token, token_hash(text), self._box.encrypt(text))
        return CreatedToken(token=token, text=text)

    async def authenticate(self, text: str | None) -> ApiToken:
        """The active token for a bearer value, or Unauthenticated."""
        if not text:
            raise Unauthenticated()
        key = token_hash(text)
        now = time.monotonic()
        cached = self._cache.get(key)
        if cached and now - cached[0] < _CACHE_TTL_S:
            return cached[1]
        token = await self._store.find_active_by_hash(key)
        if token is None:
            self._cache.pop(key, None)
            raise Unauthenticated()
        if token.last_used_at is None or (utcnow() - token.last_used_at).total_seconds() > _TOUCH_INTERVAL_S:
            at = utcnow()
            await self._store.touch_token(token.id, at)
            token = replace(token, last_used_at=at)
        self._cache[key] = (now, token)
        return token

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
