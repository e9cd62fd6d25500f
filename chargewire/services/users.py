"""Back-office operators: create, list, set a password, and authenticate by email and password.

Passwords are hashed with Argon2id (argon2-cffi's current defaults). Hashing is slow on purpose, so it runs
in a worker thread rather than on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from chargewire.clock import utcnow
from chargewire.errors import NotFound, Unauthenticated, ValidationFailed
from chargewire.ids import has_prefix, new_id
from chargewire.store.user_store import User, UserStore

logger = logging.getLogger(__name__)

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024
MAX_EMAIL_LENGTH = 254
MAX_CONCURRENT_PASSWORD_CHECKS = 2
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
WRONG_CREDENTIALS = "The email or password is not right."


class UserService:
    """Operators who sign in to the back office."""

    def __init__(self, store: UserStore, hasher: PasswordHasher | None = None) -> None:
        self._store = store
        self._hasher = hasher or PasswordHasher()
        # Verified against when the email is unknown, so a wrong email costs as long as a wrong password;
        # made on first use, as every process opens this service and most never authenticate.
        self._decoy_hash: str | None = None
        # Each Argon2id check takes 64 MiB for its moment: a flood of sign-ins waits here instead of taking
        # 64 MiB per request at once.
        self._checks = asyncio.Semaphore(MAX_CONCURRENT_PASSWORD_CHECKS)

    async def create(self, email: str, password: str) -> User:
        """Add an operator; ValidationFailed naming `email` or `password` when either is not acceptable."""
        normalized = _check_email(email)
        _check_password(password)
        user = User(id=new_id("usr"), email=normalized, created_at=utcnow())
        password_hash = await asyncio.to_thread(self._hasher.hash, password)
        if not await self._store.insert_user(user, password_hash):
            raise ValidationFailed({"email": [f"There is already a user {normalized}."]})
        logger.info("user %s created", user.id)
        return user

    async def set_password(self, email: str, password: str) -> User:
        """Give an existing operator a new password."""
        _check_password(password)
        found = await self._store.find_with_hash(normalize_email(email))
        if found is None:
            raise NotFound(f"No user {email}.")
        user, _ = found
        await self._store.set_password_hash(user.id, await asyncio.to_thread(self._hasher.hash, password))
        return user

    async def list(self) -> Sequence[User]:
        """Every operator."""
        return await self._store.list_users()

    async def get(self, user_id: str) -> User:
        """One operator by id; NotFound when there is none (for example after the user was removed)."""
        user = await self._store.get_user(user_id) if has_prefix(user_id, "usr") else None
        if user is None:
            raise NotFound("No such user.")
        return user

    async def authenticate(self, email: str, password: str) -> User:
        """The operator with this email and password, or Unauthenticated saying only that one of them is wrong."""
        if len(password) > MAX_PASSWORD_LENGTH or len(email) > MAX_EMAIL_LENGTH:
            raise Unauthenticated(WRONG_CREDENTIALS)
        found = await self._store.find_with_hash(normalize_email(email))
        if found is None and self._decoy_hash is None:
            self._decoy_hash = await asyncio.to_thread(self._hasher.hash, "chargewire decoy password")
        password_hash = found[1] if found else str(self._decoy_hash)
        try:
            async with self._checks:
                await asyncio.to_thread(self._hasher.verify, password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError) as exc:
            raise Unauthenticated(WRONG_CREDENTIALS) from exc
        if found is None:
            raise Unauthenticated(WRONG_CREDENTIALS)
        user = found[0]
        if self._hasher.check_needs_rehash(password_hash):
            await self._store.set_password_hash(user.id, await asyncio.to_thread(self._hasher.hash, password))
        await self._store.record_login(user.id, utcnow())
        return user


def normalize_email(email: str) -> str:
    """The form an email is stored and looked up in: trimmed and lower-cased."""
    return email.strip().lower()


def _check_email(email: str) -> str:
    normalized = normalize_email(email)
    if not normalized:
        raise ValidationFailed({"email": ["The email field is required."]})
    if len(normalized) > MAX_EMAIL_LENGTH or not _EMAIL.match(normalized):
        raise ValidationFailed({"email": ["The email must be an address such as ops@example.com."]})
    return normalized


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationFailed({"password": [f"The password must be at least {MIN_PASSWORD_LENGTH} characters."]})
    if len(password) > MAX_PASSWORD_LENGTH:
        raise ValidationFailed({"password": [f"The password may be at most {MAX_PASSWORD_LENGTH} characters."]})
