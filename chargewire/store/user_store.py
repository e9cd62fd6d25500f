"""Back-office operators in the database: named statements, domain records out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import RowMapping, insert, select, update
from sqlalchemy.exc import IntegrityError

from chargewire.store.database import Database
from chargewire.store.tables import users


@dataclass(frozen=True, slots=True)
class User:
    """An operator who signs in to the back office; the password hash never leaves the store and service."""

    id: str
    email: str
    created_at: datetime
    last_login_at: datetime | None = None


_USER_COLUMNS = (users.c.id, users.c.email, users.c.created_at, users.c.last_login_at)


def _to_user(mapping: RowMapping) -> User:
    return User(
        id=mapping["id"],
        email=mapping["email"],
        created_at=mapping["created_at"],
        last_login_at=mapping["last_login_at"],
    )


class UserStore:
    """Reads and writes the `users` table."""

    def __init__(self, database: Database) -> None:
        self._database = database

    async def insert_user(self, user: User, password_hash: str) -> bool:
        """Store a new user; False when the email is taken (the unique constraint decides races)."""
        statement = insert(users).values(
            id=user.id, email=user.email, password_hash=password_hash, created_at=user.created_at
        )
        try:
            async with self._database.transaction() as connection:
                await connection.execute(statement)
        except IntegrityError:
            return False
        return True

    async def find_with_hash(self, email: str) -> tuple[User, str] | None:
        """The user with this (lower-cased) email and their password hash."""
        query = select(*_USER_COLUMNS, users.c.password_hash).where(users.c.email == email)
        async with self._database.reading() as connection:
            row = (await connection.execute(query)).first()
        return (_to_user(row._mapping), row.password_hash) if row else None

    async def get_user(self, user_id: str) -> User | None:
        """The user with this id."""
        async with self._database.reading() as connection:
            row = (await connection.execute(select(*_USER_COLUMNS).where(users.c.id == user_id))).first()
        return _to_user(row._mapping) if row else None

    async def list_users(self) -> list[User]:
        """Every user, oldest first."""
        async with self._database.reading() as connection:
            rows = (await connection.execute(select(*_USER_COLUMNS).order_by(users.c.id))).all()
        return [_to_user(row._mapping) for row in rows]

    async def set_password_hash(self, user_id: str, password_hash: str) -> bool:
        """Replace a user's password hash (a new password, or a rehash under newer parameters)."""
        statement = update(users).where(users.c.id == user_id).values(password_hash=password_hash)
        async with self._database.transaction() as connection:
            result = await connection.execute(statement)
        return int(result.rowcount) > 0

    async def record_login(self, user_id: str, at: datetime) -> None:
        """Note when a user last signed in."""
        async with self._database.transaction() as connection:
            await connection.execute(update(users).where(users.c.id == user_id).values(last_login_at=at))
