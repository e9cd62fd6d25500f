"""Back-office sessions kept on the server: a cookie signs in only while its session row exists.

The session cookie is signed, so it cannot be forged, but a copy of it (from a shared machine, a proxy log, a
stolen backup) would work until it expired. Each sign-in therefore starts a session row, named in the cookie by
a random id of which only the hash is stored; signing out deletes the row, and with it every copy of the cookie.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from chargewire.clock import utcnow
from chargewire.store.database import Database
from chargewire.store.session_store import SessionStore, StoredSession


def session_hash(session_id: str) -> str:
    """The stored form of a session id."""
    return hashlib.sha256(session_id.encode()).hexdigest()


class BackofficeSessions:
    """Starts, checks, lists and ends operators' sessions."""

    def __init__(self, store: SessionStore, max_age_s: float) -> None:
        self._store = store
        self._max_age = timedelta(seconds=max_age_s)

    @classmethod
    def on(cls, database: Database, max_age_s: float) -> BackofficeSessions:
        """Sessions kept in `database`, each lasting at most `max_age_s` from sign-in."""
        return cls(SessionStore(database), max_age_s)

    async def start(self, user_id: str, client: str, user_agent: str) -> str:
        """A new session for `user_id`; returns its id, for the cookie only."""
        now = utcnow()
        await self._store.delete_sessions_before(now - self._max_age)  # expired ones go as new ones come
        session_id = secrets.token_urlsafe(32)
        await self._store.insert_session(StoredSession(session_hash(session_id), user_id, now, client, user_agent))
        return session_id

    async def is_live(self, session_id: str | None, user_id: str) -> bool:
        """True while the session exists, belongs to `user_id` and has not outlived its maximum age."""
        if not session_id:
            return False
        found = await self._store.find_session(session_hash(session_id))
        return found is not None and found.user_id == user_id and utcnow() - found.created_at <= self._max_age

    async def end(self, session_id: str | None) -> None:
        """End one session (every copy of its cookie stops working)."""
        if session_id:
            await self._store.delete_session(session_hash(session_id))

    async def end_all(self, user_id: str) -> int:
        """End every session of a user, this one included; returns how many ended."""
        return await self._store.delete_user_sessions(user_id)

    async def list(self, user_id: str) -> list[StoredSession]:
        """A user's sessions, newest first."""
        return await self._store.list_user_sessions(user_id)
