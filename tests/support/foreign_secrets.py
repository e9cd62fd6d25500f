"""Stored secrets that the running service cannot decrypt, as another CHARGEWIRE_SECRET_KEY leaves them.

The CLI and `serve` now refuse a key that does not decrypt what is stored, so the tests make the state that a
database restored beside the wrong key, or one written before that check existed, is in: a subscription whose
secrets were encrypted under a key the service does not have.
"""

from __future__ import annotations

from sqlalchemy import select, update

from chargewire.security import SecretBox
from chargewire.store.database import create_database
from chargewire.store.tables import subscriptions

ANOTHER_SECRET_KEY = "another-secret-key-9876543210-zyxwvutsrqponm"


async def encrypt_under_another_key(database_url: str, secret_key: str, subscription_id: str) -> None:
    """Re-encrypt the subscription's stored secrets (written under `secret_key`) under ANOTHER_SECRET_KEY."""
    mine, other = SecretBox(secret_key), SecretBox(ANOTHER_SECRET_KEY)
    columns = (subscriptions.c.signing_secrets_encrypted, subscriptions.c.target_secrets_encrypted)
    database = create_database(database_url)
    try:
        async with database.transaction() as connection:
            row = (await connection.execute(select(*columns).where(subscriptions.c.id == subscription_id))).one()
            values = {
                column.name: other.encrypt(mine.decrypt(stored))
                for column, stored in zip(columns, row, strict=True)
                if stored is not None
            }
            await connection.execute(update(subscriptions).where(subscriptions.c.id == subscription_id).values(values))
    finally:
        await database.aclose()
