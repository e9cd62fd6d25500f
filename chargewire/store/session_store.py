"""Back-office sessions in the database: named statements, domain records out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, insert, select

from chargewire.store.database import Database
from chargewire.store.tables import backoffice_sessions


@dataclass(frozen=True, slots=True)
class StoredSession:
    """A signed-in session as kept on the server: whose, since when, and from where it began."""

    id_hash: str
    user_id: str
    created_at: datetime
    client: str
    user_agent: str


class SessionStore:
    """Reads and writes the `backoffice_sessions` table."""

    def __init__(self, database: Database) -> None:
        self._database = database

    async def insert_session(self, session: StoredSession) -> None:
        """Keep a new session."""
        values = {
            "id_hash": session.id_hash,
            "user_id": session.user_id,
            "created_at": session.created_at,
            "client": session.client[:100],
            "user_agent": session.user_agent[:300],
        }
        async with self._database.transaction() as connection:
            await connection.execute(insert(backoffice_sessions).values(values))

    async def find_session(self, id_hash: str) -> StoredSession | None:
        """The session with this id hash, if it was not ended."""
        query = select(backoffice_sessions).where(backoffice_sessions.c.id_hash == id_hash)
        async with self._database.reading() as connection:
            row = (await connection.execute(query)).first()
        return StoredSession(**row._mapping) if row else None

    async def list_user_sessions(self, user_id: str) -> list[StoredSession]:
        """A user's sessions, newest first."""
        query = (
            select(backoffice_sessions)
            .where(backoffice_sessions.c.user_id == user_id)
            .order_by(backoffice_sessions.c.created_at.desc())
        )
        async with self._database.reading() as connection:
            rows = (await connection.execute(query)).all()
        return [StoredSession(**row._mapping) for row in rows]

    async def delete_session(self, id_hash: str) -> None:
        """End one session."""
        async with self._database.transaction() as connection:
            await connection.execute(delete(backoffice_sessions).where(backoffice_sessions.c.id_hash == id_hash))

    async def delete_user_sessions(self, user_id: str) -> int:
        """End every session of a user; returns how many there were."""
        statement = delete(backoffice_sessions).where(backoffice_sessions.c.user_id == user_id)
        async with self._database.transaction() as connection:
            return (await connection.execute(statement)).rowcount

    async def delete_sessions_before(self, started_before: datetime) -> int:
        """End every session begun before a time (they have expired); returns how many."""
        statement = delete(backoffice_sessions).where(backoffice_sessions.c.created_at < started_before)
        async with self._database.transaction() as connection:
            return (await connection.execute(statement)).rowcount
