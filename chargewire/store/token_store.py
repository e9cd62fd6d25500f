"""API tokens in the database: named statements, domain records out."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import cast

from sqlalchemy import RowMapping, String, insert, select, update

from chargewire.models import ApiToken, Scope
from chargewire.store.database import Database
from chargewire.store.tables import api_tokens

# The width of `api_tokens.name`: longer names are refused before the transaction, on both databases.
TOKEN_NAME_MAX_CHARS: int = cast(String, api_tokens.c.name.type).length or 0


def _to_token(mapping: RowMapping) -> ApiToken:
    return ApiToken(
        id=mapping["id"],
        name=mapping["name"],
        scopes=tuple(Scope(scope) for scope in mapping["scopes"]),
        created_at=mapping["created_at"],
        revoked_at=mapping["revoked_at"],
        last_used_at=mapping["last_used_at"],
    )


_TOKEN_COLUMNS = (
    api_tokens.c.id,
    api_tokens.c.name,
    api_tokens.c.scopes,
    api_tokens.c.created_at,
    api_tokens.c.revoked_at,
    api_tokens.c.last_used_at,
)


class TokenStore:
    """Reads and writes the `api_tokens` table."""

    def __init__(self, database: Database) -> None:
        self._database = database

    async def insert_token(self, token: ApiToken, token_hash: str, token_encrypted: bytes) -> None:
        """Store a new token by its hash, with its ciphertext for signing later."""
        async with self._database.transaction() as connection:
            await connection.execute(
                insert(api_tokens).values(
                    id=token.id,
                    name=token.name,
                    token_hash=token_hash,
                    token_encrypted=token_encrypted,
                    scopes=[str(scope) for scope in token.scopes],
                    created_at=token.created_at,
                )
            )

    async def find_active_by_hash(self, token_hash: str) -> ApiToken | None:
        """The unrevoked token with this hash, if any."""
        query = select(*_TOKEN_COLUMNS).where(api_tokens.c.token_hash == token_hash, api_tokens.c.revoked_at.is_(None))
        async with self._database.reading() as connection:
            row = (await connection.execute(query)).first()
        return _to_token(row._mapping) if row else None

    async def get_token(self, token_id: str) -> ApiToken | None:
        """The token with this id, revoked or not."""
        async with self._database.reading() as connection:
            row = (await connection.execute(select(*_TOKEN_COLUMNS).where(api_tokens.c.id == token_id))).first()
        return _to_token(row._mapping) if row else None

    async def list_tokens(self, include_revoked: bool = False) -> Sequence[ApiToken]:
        """Every token, oldest first."""
        query = select(*_TOKEN_COLUMNS).order_by(api_tokens.c.id)
        if not include_revoked:
            query = query.where(api_tokens.c.revoked_at.is_(None))
        async with self._database.reading() as connection:
            rows = (await connection.execute(query)).all()
        return [_to_token(row._mapping) for row in rows]

    async def encrypted_token(self, token_id: str) -> bytes | None:
        """The ciphertext of a token's text, used to key `X-Signature`."""
        query = select(api_tokens.c.token_encrypted).where(api_tokens.c.id == token_id)
        async with self._database.reading() as connection:
            value = (await connection.execute(query)).scalar_one_or_none()
        return bytes(value) if value is not None else None

    async def newest_encrypted_token(self) -> bytes | None:
        """The ciphertext of the newest token, revoked or not: a sample of what the secret key must decrypt."""
        query = select(api_tokens.c.token_encrypted).order_by(api_tokens.c.id.desc()).limit(1)
        async with self._database.reading() as connection:
            value = (await connection.execute(query)).scalar_one_or_none()
        return bytes(value) if value is not None else None

    async def revoke_token(self, token_id: str, at: datetime) -> bool:
        """Mark a token revoked; False when there is no such active token."""
        statement = (
            update(api_tokens)
            .where(api_tokens.c.id == token_id, api_tokens.c.revoked_at.is_(None))
            .values(revoked_at=at)
        )
        async with self._database.transaction() as connection:
            result = await connection.execute(statement)
        return result.rowcount > 0

    async def touch_token(self, token_id: str, at: datetime) -> None:
        """Record when a token was last used."""
        async with self._database.transaction() as connection:
            await connection.execute(update(api_tokens).where(api_tokens.c.id == token_id).values(last_used_at=at))
